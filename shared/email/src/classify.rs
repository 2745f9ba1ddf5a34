//! Deterministic classification of one message.
//!
//! Rules run in this order; the first that fires decides, and
//! [`ClassificationResult::reason`] names it. Text rules look at the subject
//! and the first 4 KiB of the body, lowercased.
//!
//! | # | rule | class |
//! |---|------|-------|
//! | 1 | Gmail label `SPAM` | spam |
//! | 2 | `X-Spam-Flag: YES` or `X-Spam-Status: Yes` | spam |
//! | 3 | one strong spam marker (`ADV:` subject tag, GTUBE test string, "viagra", "specially selected", "western union", "next of kin", 代开 "issued on your behalf") | spam |
//! | 4 | two or more spam phrases ("click here", "100% free", "act now", "winner", "to be removed", "giveaway", ...) | spam |
//! | 5 | spoofed sender: the display name is an address at another domain than the sender's | spam |
//! | 6 | delivery report: `multipart/report`, or sender `mailer-daemon`/`postmaster` | notification |
//! | 7 | financial word (invoice, receipt, payment, statement, fattura, factuur, ...) in the subject; or in the body twice, or once with an amount in a currency | financial |
//! | 8 | list discussion (sender not no-reply): list markers (`List-Id`, `List-Post`, `Precedence: list`, a `[tag]` subject) on plain-text mail with a reply, `List-Post`, `[PATCH]` or a `[tag]` subject, and not an announcement; or a digest | work |
//! | 9 | bulk mail: `List-Unsubscribe`, `Precedence: bulk/list/junk`, `List-Id`, or "unsubscribe" in the body | newsletter |
//! | 10 | newsletter vocabulary twice (newsletter, webinar, campaign, promotion, discount, business partner, ...) | newsletter |
//! | 11 | automated: `Auto-Submitted` other than `no`, a no-reply/notification sender, or notification vocabulary | notification |
//! | 12 | a ticket number in the subject (`#12345`); or work vocabulary (meeting, project, deadline, patch, review, ...) twice, or once in a reply | work |
//! | 13 | Gmail category labels: PROMOTIONS → newsletter, UPDATES/SOCIAL → notification, FORUMS → work | as named |
//! | 14 | otherwise | personal |
//!
//! Tuned on the dev corpus (`testdata/email`); see the crate README for the
//! confusion matrix. Text inside attachments (a PDF) is not read here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ParsedEmail, vocab};

/// The six classes pai shows mail under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    Personal,
    Work,
    Financial,
    Newsletter,
    Notification,
    Spam,
}

impl Classification {
    pub const ALL: [Classification; 6] = [
        Classification::Personal,
        Classification::Work,
        Classification::Financial,
        Classification::Newsletter,
        Classification::Notification,
        Classification::Spam,
    ];

    /// The lowercase name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Personal => "personal",
            Classification::Work => "work",
            Classification::Financial => "financial",
            Classification::Newsletter => "newsletter",
            Classification::Notification => "notification",
            Classification::Spam => "spam",
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is none of the six classes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown classification {0:?}")]
pub struct UnknownClassification(pub String);

impl FromStr for Classification {
    type Err = UnknownClassification;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Classification::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownClassification(s.to_string()))
    }
}

/// The class and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassificationResult {
    pub class: Classification,
    reason: String,
}

impl ClassificationResult {
    fn new(class: Classification, reason: impl Into<String>) -> Self {
        Self {
            class,
            reason: reason.into(),
        }
    }

    /// Which rule fired, for the UI and for debugging a wrong class.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// How much of the body the text rules read: the top of a message says what
/// it is; quoted history and footers below add noise and time.
const BODY_PREFIX: usize = 4096;

/// What the rules look at, computed once.
struct Features<'a> {
    email: &'a ParsedEmail,
    labels: &'a [String],
    subject: String,
    /// Subject and top of the body, lowercased.
    text: String,
    sender_local: String,
    sender_domain: String,
}

impl Features<'_> {
    fn has_label(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l.eq_ignore_ascii_case(name))
    }
}

/// Classifies `email`; `labels` are its Gmail label ids (may be empty).
pub fn classify(email: &ParsedEmail, labels: &[String]) -> ClassificationResult {
    let subject = email.subject.to_lowercase();
    let text = format!(
        "{subject}\n{}",
        prefix(&email.text, BODY_PREFIX).to_lowercase()
    );
    let sender = email
        .from
        .as_ref()
        .map(|a| a.email.to_ascii_lowercase())
        .unwrap_or_default();
    let (sender_local, sender_domain) = sender.split_once('@').unwrap_or((&sender, ""));
    let f = Features {
        email,
        labels,
        subject: subject.clone(),
        text,
        sender_local: sender_local.to_string(),
        sender_domain: sender_domain.to_string(),
    };
    spam(&f)
        .or_else(|| delivery_report(&f))
        .or_else(|| financial(&f))
        .or_else(|| list_discussion(&f))
        .or_else(|| bulk(&f))
        .or_else(|| automated(&f))
        .or_else(|| work(&f))
        .or_else(|| category_label(&f))
        .unwrap_or_else(|| ClassificationResult::new(Classification::Personal, "no rule matched"))
}

/// Rules 1-5.
fn spam(f: &Features<'_>) -> Option<ClassificationResult> {
    let h = &f.email.headers;
    let found = |reason: String| Some(ClassificationResult::new(Classification::Spam, reason));
    if f.has_label("SPAM") {
        return found("gmail label SPAM".into());
    }
    if h.x_spam_flag
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
        || h.x_spam_status
            .as_deref()
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("yes"))
    {
        return found("spam filter header (X-Spam-Flag/X-Spam-Status)".into());
    }
    if let Some(marker) = vocab::STRONG_SPAM.iter().find(|w| f.text.contains(*w)) {
        return found(format!("spam marker: {marker}"));
    }
    let phrases = hits(&f.text, vocab::SPAM_PHRASES);
    if phrases.len() >= 2 {
        return found(format!("spam phrases: {}", phrases.join(", ")));
    }
    let spoofed = f
        .email
        .from
        .as_ref()
        .and_then(|a| a.name.as_deref())
        .and_then(|name| name.trim().rsplit_once('@'))
        .is_some_and(|(_, domain)| {
            !f.sender_domain.is_empty() && !domain.eq_ignore_ascii_case(&f.sender_domain)
        });
    if spoofed {
        return found("display name is an address at another domain".into());
    }
    None
}

/// Rule 6.
fn delivery_report(f: &Features<'_>) -> Option<ClassificationResult> {
    let report = f.email.headers.content_type == "multipart/report"
        || f.sender_local == "mailer-daemon"
        || f.sender_local == "postmaster";
    report
        .then(|| ClassificationResult::new(Classification::Notification, "delivery status report"))
}

/// Rule 7.
fn financial(f: &Features<'_>) -> Option<ClassificationResult> {
    let words = hits(&f.text, vocab::FINANCIAL);
    let in_subject = hits(&f.subject, vocab::FINANCIAL);
    (!in_subject.is_empty() || words.len() >= 2 || (!words.is_empty() && has_amount(&f.text))).then(
        || {
            ClassificationResult::new(
                Classification::Financial,
                format!("financial vocabulary: {}", words.join(", ")),
            )
        },
    )
}

/// A `[tag]` at the start of the subject (after Re:/Fwd:), as mailing lists
/// add.
fn subject_tag(subject: &str) -> Option<&str> {
    let mut rest = subject.trim_start();
    loop {
        let lower = rest.get(..4).unwrap_or_default().to_ascii_lowercase();
        if lower.starts_with("re:") || lower.starts_with("fw:") {
            rest = rest[3..].trim_start();
        } else if lower == "fwd:" {
            rest = rest[4..].trim_start();
        } else {
            break;
        }
    }
    let inner = rest.strip_prefix('[')?;
    let (tag, _) = inner.split_once(']')?;
    (!tag.is_empty() && tag.len() <= 40).then_some(tag)
}

/// Rule 8.
fn list_discussion(f: &Features<'_>) -> Option<ClassificationResult> {
    let e = f.email;
    let h = &e.headers;
    let tag = subject_tag(&f.subject);
    let list = h.list_id.is_some()
        || h.list_post.is_some()
        || h.precedence.as_deref() == Some("list")
        || tag.is_some();
    let reply = e.in_reply_to.is_some() || !e.references.is_empty();
    let announcement = tag.is_some_and(|t| t.contains("announce"))
        || h.list_id
            .as_deref()
            .is_some_and(|l| l.to_lowercase().contains("announce"));
    let no_reply = vocab::NO_REPLY_SENDERS
        .iter()
        .any(|n| f.sender_local.contains(n));
    let discussion = list
        && !no_reply
        && !h.html_only
        && !announcement
        && (reply || h.list_post.is_some() || f.subject.contains("[patch") || tag.is_some());
    if discussion {
        return Some(ClassificationResult::new(
            Classification::Work,
            "mailing-list discussion",
        ));
    }
    (f.subject.contains("digest") && !h.html_only)
        .then(|| ClassificationResult::new(Classification::Work, "mailing-list digest"))
}

/// Rules 9-10.
fn bulk(f: &Features<'_>) -> Option<ClassificationResult> {
    let h = &f.email.headers;
    let bulk_precedence = h
        .precedence
        .as_deref()
        .is_some_and(|p| matches!(p, "bulk" | "list" | "junk"));
    if h.list_unsubscribe.is_some()
        || bulk_precedence
        || h.list_id.is_some()
        || f.text.contains("unsubscribe")
    {
        return Some(ClassificationResult::new(
            Classification::Newsletter,
            "bulk mail (List-Unsubscribe/List-Id/Precedence/unsubscribe)",
        ));
    }
    let words = hits(&f.text, vocab::NEWSLETTER);
    (words.len() >= 2).then(|| {
        ClassificationResult::new(
            Classification::Newsletter,
            format!("newsletter vocabulary: {}", words.join(", ")),
        )
    })
}

/// Rule 11.
fn automated(f: &Features<'_>) -> Option<ClassificationResult> {
    let auto = f
        .email
        .headers
        .auto_submitted
        .as_deref()
        .is_some_and(|a| a != "no");
    let no_reply = vocab::NO_REPLY_SENDERS
        .iter()
        .any(|n| f.sender_local.contains(n));
    let words = hits(&f.text, vocab::NOTIFICATION);
    (auto || no_reply || !words.is_empty()).then(|| {
        ClassificationResult::new(
            Classification::Notification,
            format!("automated sender or vocabulary: {}", words.join(", ")),
        )
    })
}

/// Rule 12.
fn work(f: &Features<'_>) -> Option<ClassificationResult> {
    let ticket = f
        .subject
        .split(|c: char| !(c == '#' || c.is_ascii_digit()))
        .any(|w| w.len() >= 4 && w.starts_with('#') && w[1..].chars().all(|c| c.is_ascii_digit()));
    if ticket {
        return Some(ClassificationResult::new(
            Classification::Work,
            "ticket number in subject",
        ));
    }
    let reply = f.email.in_reply_to.is_some() || !f.email.references.is_empty();
    let words = hits(&f.text, vocab::WORK);
    (words.len() >= 2 || (reply && !words.is_empty())).then(|| {
        ClassificationResult::new(
            Classification::Work,
            format!("work vocabulary: {}", words.join(", ")),
        )
    })
}

/// Rule 13.
fn category_label(f: &Features<'_>) -> Option<ClassificationResult> {
    [
        ("CATEGORY_PROMOTIONS", Classification::Newsletter),
        ("CATEGORY_UPDATES", Classification::Notification),
        ("CATEGORY_SOCIAL", Classification::Notification),
        ("CATEGORY_FORUMS", Classification::Work),
    ]
    .into_iter()
    .find(|(label, _)| f.has_label(label))
    .map(|(label, class)| ClassificationResult::new(class, format!("gmail label {label}")))
}

fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn hits<'a>(text: &str, words: &[&'a str]) -> Vec<&'a str> {
    words.iter().copied().filter(|w| text.contains(w)).collect()
}

/// A sum of money: a currency sign or code next to a number ("$12.50",
/// "EUR 40", "12,00 €").
fn has_amount(text: &str) -> bool {
    const MARKERS: &[&str] = &["$", "€", "£", "¥", "eur", "usd", "gbp", "chf"];
    MARKERS.iter().any(|m| {
        text.match_indices(m).any(|(i, _)| {
            let before = text[..i].trim_end().chars().next_back();
            let after = text[i + m.len()..].trim_start().chars().next();
            before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Classification::ALL {
            assert_eq!(c.as_str().parse::<Classification>(), Ok(c));
        }
        assert!("junk".parse::<Classification>().is_err());
    }

    #[test]
    fn amounts() {
        assert!(has_amount("total $12.50 due"));
        assert!(has_amount("totale 40,00 eur"));
        assert!(!has_amount("euro zone"));
    }

    #[test]
    fn spam_label_wins() {
        let email = ParsedEmail::default();
        let result = classify(&email, &["SPAM".to_string()]);
        assert_eq!(result.class, Classification::Spam);
        assert_eq!(classify(&email, &[]).class, Classification::Personal);
    }
}
