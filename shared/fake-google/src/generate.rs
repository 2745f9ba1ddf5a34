//! Deterministic synthetic mail for benchmarks: distinct subjects and
//! bodies, reply threads, and an optional PDF attachment on some messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub count: usize,
    /// The same seed gives the same messages, byte for byte.
    pub seed: u64,
    /// Every `reply_every`-th message replies to the one before it (0: none).
    pub reply_every: usize,
    /// A file (name, bytes) attached as `application/pdf` to every
    /// `attachment_every`-th message (0: none).
    pub attachment: Option<(String, Vec<u8>)>,
    pub attachment_every: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            count: 100,
            seed: 1,
            reply_every: 4,
            attachment: None,
            attachment_every: 50,
        }
    }
}

const WORDS: &[&str] = &[
    "invoice",
    "meeting",
    "garden",
    "quarterly",
    "budget",
    "holiday",
    "train",
    "review",
    "contract",
    "harbour",
    "kitchen",
    "release",
    "concert",
    "report",
    "insurance",
    "bicycle",
    "library",
    "project",
    "dentist",
    "weekend",
    "payment",
    "schedule",
    "recipe",
    "account",
    "delivery",
    "lecture",
    "mountain",
    "server",
    "ticket",
    "museum",
    "proposal",
    "receipt",
    "painting",
    "migration",
    "football",
    "subscription",
    "translation",
    "appointment",
    "river",
    "harvest",
];

/// splitmix64: small, fast, and stable across versions (unlike `rand`'s StdRng).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn words(state: &mut u64, count: usize) -> String {
    (0..count)
        .map(|_| WORDS[(next(state) % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Returns `options.count` RFC 5322 messages as (name, bytes), oldest first,
/// one minute apart from 2024-01-01.
pub fn generate_messages(options: &GenerateOptions) -> Vec<(String, Vec<u8>)> {
    let mut state = options.seed;
    let start = chrono::DateTime::from_timestamp(1_704_067_200, 0).unwrap_or_default();
    let mut previous: Option<(String, String)> = None; // (message id, subject)
    (0..options.count)
        .map(|index| {
            let date = (start + chrono::Duration::minutes(index as i64)).to_rfc2822();
            let message_id = format!("gen-{}-{index}@fake.example", options.seed);
            let sender = format!("person{}@example.org", next(&mut state) % 97);
            let reply = options.reply_every > 0 && index % options.reply_every == options.reply_every - 1;
            let (subject, threading) = match (&previous, reply) {
                (Some((parent, subject)), true) => (
                    format!("Re: {subject}"),
                    format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
                ),
                _ => (format!("Message {index}: {}", words(&mut state, 4)), String::new()),
            };
            let paragraph = format!("Hello,\r\n\r\nThis is message {index} about {}.\r\n{}.\r\n\r\nRegards,\r\n{sender}\r\n", words(&mut state, 6), words(&mut state, 30));
            let attach = options.attachment_every > 0 && index % options.attachment_every == options.attachment_every - 1;
            let mut raw = format!(
                "From: {sender}\r\nTo: owner@example.com\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\n{threading}MIME-Version: 1.0\r\n"
            );
            match (&options.attachment, attach) {
                (Some((name, bytes)), true) => {
                    let boundary = format!("=_gen_{index}");
                    let encoded = STANDARD.encode(bytes);
                    let lines: Vec<&str> = encoded
                        .as_bytes()
                        .chunks(76)
                        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
                        .collect();
                    raw.push_str(&format!(
                        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{paragraph}\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--{boundary}--\r\n",
                        lines.join("\r\n")
                    ));
                }
                _ => raw.push_str(&format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{paragraph}")),
            }
            let root = match (&previous, reply) {
                (Some(parent), true) => parent.clone(),
                _ => (message_id.clone(), subject.clone()),
            };
            // A reply keeps its thread going; the next reply answers the root.
            previous = Some(if reply { root } else { (message_id, subject) });
            (format!("generated-{index:05}.eml"), raw.into_bytes())
        })
        .collect()
}
