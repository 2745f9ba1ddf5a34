//! The body text and the attachments of a message.
//!
//! mail-parser already picks the body parts (text/plain preferred over the
//! HTML alternative; HTML when it is the only body). Attached messages
//! (message/rfc822, digests, forwards) are kept as attachments *and* their
//! text is appended, so a search for what was forwarded finds the mail.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use crate::decode;
use crate::html::html_to_text;
use crate::model::{Attachment, Limits, Skipped};

/// Attached messages inside attached messages are followed this deep; past
/// it they are only kept as attachments.
const MAX_NESTING: usize = 3;

pub(crate) struct Body {
    pub text: String,
    pub html_only: bool,
    pub attachments: Vec<Attachment>,
    pub skipped: Vec<Skipped>,
}

pub(crate) fn read(message: &Message<'_>, limits: &Limits, warnings: &mut Vec<String>) -> Body {
    let mut body = Body {
        text: String::new(),
        html_only: false,
        attachments: Vec::new(),
        skipped: Vec::new(),
    };
    body.html_only = message.text_body_count() > 0
        && message
            .text_bodies()
            .all(|p| matches!(p.body, PartType::Html(_)));
    body.text = message_text(message, 0, warnings);
    for (index, part) in message.attachments().enumerate() {
        if body.text.trim().is_empty()
            && let Some((text, is_html)) = decode::recover_text_part(message, part)
        {
            warnings.push("body part with broken encoding recovered".to_string());
            body.html_only = is_html;
            body.text = if is_html { html_to_text(&text) } else { text };
            continue;
        }
        attachment(part, index, limits, &mut body, warnings);
    }
    body
}

/// The text bodies of `message` joined, followed by the text of attached
/// messages.
fn message_text(message: &Message<'_>, depth: usize, warnings: &mut Vec<String>) -> String {
    let mut pieces: Vec<String> = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(t) => match decode::mislabelled_utf8(message, part) {
                Some((text, label)) if depth == 0 => {
                    warnings.push(format!("charset {label} declared but the body is UTF-8"));
                    Some(text)
                }
                _ => Some(t.replace("\r\n", "\n")),
            },
            PartType::Html(h) => Some(html_to_text(h)),
            PartType::Binary(_)
            | PartType::InlineBinary(_)
            | PartType::Message(_)
            | PartType::Multipart(_) => None,
        })
        .filter(|t| !t.trim().is_empty())
        .collect();
    if depth < MAX_NESTING {
        for part in message.attachments() {
            if let PartType::Message(inner) = &part.body {
                let mut forwarded = String::from("---------- Attached message ----------\n");
                if let Some(subject) = inner.subject() {
                    forwarded.push_str(&format!("Subject: {subject}\n"));
                }
                if let Some(from) = inner.from().and_then(|a| a.first()) {
                    let name = from.name().unwrap_or_default();
                    let email = from.address().unwrap_or_default();
                    forwarded.push_str(&format!("From: {name} <{email}>\n"));
                }
                forwarded.push('\n');
                forwarded.push_str(&message_text(inner, depth + 1, warnings));
                pieces.push(forwarded);
            }
        }
    }
    pieces.join("\n\n")
}

fn attachment(
    part: &MessagePart<'_>,
    index: usize,
    limits: &Limits,
    body: &mut Body,
    warnings: &mut Vec<String>,
) {
    let filename = part
        .attachment_name()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("attachment-{}", index + 1));
    let content_type = match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        },
        None if matches!(part.body, PartType::Message(_)) => "message/rfc822".to_string(),
        None => "application/octet-stream".to_string(),
    }
    .to_ascii_lowercase();
    let data = part.contents();
    if data.len() > limits.max_attachment_bytes {
        let reason = format!(
            "attachment of {} bytes is over the {} byte limit",
            data.len(),
            limits.max_attachment_bytes
        );
        warnings.push(format!("skipped {filename}: {reason}"));
        body.skipped.push(Skipped { filename, reason });
        return;
    }
    body.attachments.push(Attachment {
        filename,
        content_type,
        size: data.len(),
        data: data.to_vec(),
    });
}
