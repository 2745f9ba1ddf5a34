//! Raw RFC 5322 bytes to [`ParsedEmail`]: header fields here, body and
//! attachments in [`crate::parts`].

use chrono::{DateTime, NaiveDate, Utc};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders};

use crate::html::tidy;
use crate::model::{Address, ClassifyHeaders, Limits, ParsedEmail};
use crate::{ParseError, charset, decode, parts};

/// Parses one raw message.
///
/// Fails only when nothing usable can be read (empty input, no header
/// fields); malformed MIME, unknown charsets and oversized attachments are
/// read as far as possible and recorded in `warnings` and
/// `skipped_attachments`.
pub fn parse(raw: &[u8], limits: &Limits) -> Result<ParsedEmail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let mut warnings = Vec::new();
    let (message, body) = match guarded_parse(raw) {
        Some(message) => {
            let body = parts::read(&message, limits, &mut warnings);
            (message, body)
        }
        None => {
            // The MIME parser gave up (or panicked): keep the header fields and
            // the body bytes as plain text rather than losing the message.
            let (head, rest) = split_head(raw);
            let message = guarded_parse(head).ok_or(ParseError::Unreadable)?;
            warnings.push("MIME structure unreadable: body kept as raw text".to_string());
            let body = parts::Body {
                text: String::from_utf8_lossy(rest).into_owned(),
                html_only: false,
                attachments: Vec::new(),
                skipped: Vec::new(),
            };
            (message, body)
        }
    };
    if message.headers().is_empty() {
        return Err(ParseError::NoHeaders);
    }
    charset::check_message(&message, &mut warnings);

    let text = truncate(tidy(&body.text), limits.max_text_bytes, &mut warnings);
    if text.contains('\u{FFFD}') {
        warnings.push(
            "body contains bytes invalid in its declared charset; they were replaced".to_string(),
        );
    }

    let from = message.from().and_then(|a| a.iter().find_map(to_address));
    if from.is_none() {
        warnings.push("no From address".to_string());
    }
    let date = message.date().and_then(to_utc);
    if date.is_none() {
        warnings.push("no valid Date".to_string());
    }

    Ok(ParsedEmail {
        message_id: message.message_id().map(strip_brackets),
        in_reply_to: ids(message.in_reply_to()).into_iter().next(),
        references: ids(message.references()),
        from,
        to: addresses(message.all_to()),
        cc: addresses(message.all_cc()),
        reply_to: addresses(message.reply_to().into_iter()),
        subject: decode::raw_8bit_subject(&message)
            .or_else(|| message.subject().map(str::to_string))
            .as_deref()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        date,
        text,
        attachments: body.attachments,
        skipped_attachments: body.skipped,
        headers: classify_headers(&message, body.html_only),
        warnings,
    })
}

/// mail-parser with its panics contained: it is fuzzed upstream, but one
/// bad message must never take a sync worker down.
fn guarded_parse(raw: &[u8]) -> Option<Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
}

/// The header block and the body, split at the first empty line.
fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    for (i, window) in raw.windows(2).enumerate() {
        if window == b"\n\n" {
            return (&raw[..i + 1], &raw[i + 2..]);
        }
        if window == b"\n\r" && raw.get(i + 2) == Some(&b'\n') {
            return (&raw[..i + 1], &raw[i + 3..]);
        }
    }
    (raw, &[])
}

/// Cuts `text` to at most `max` bytes on a char boundary.
fn truncate(mut text: String, max: usize, warnings: &mut Vec<String>) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        warnings.push(format!(
            "text of {} bytes truncated to {end} bytes",
            text.len()
        ));
        text.truncate(end);
    }
    text
}

fn strip_brackets(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Message ids of In-Reply-To/References, whichever shape mail-parser gave.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.as_ref()).collect(),
        HeaderValue::Address(_)
        | HeaderValue::DateTime(_)
        | HeaderValue::ContentType(_)
        | HeaderValue::Received(_)
        | HeaderValue::Empty => Vec::new(),
    };
    raw.into_iter()
        .flat_map(str::split_whitespace)
        .map(strip_brackets)
        .filter(|id| !id.is_empty())
        .collect()
}

fn to_address(addr: &mail_parser::Addr<'_>) -> Option<Address> {
    let email = addr.address()?.trim();
    if email.is_empty() {
        return None;
    }
    Some(Address {
        name: addr
            .name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        email: email.to_string(),
    })
}

fn addresses<'a>(headers: impl Iterator<Item = &'a mail_parser::Address<'a>>) -> Vec<Address> {
    headers
        .flat_map(|a| a.iter().filter_map(to_address).collect::<Vec<_>>())
        .collect()
}

/// Built field by field through chrono so an impossible date (month 13,
/// hour 99) becomes `None` instead of a wrong instant.
fn to_utc(d: &mail_parser::DateTime) -> Option<DateTime<Utc>> {
    let local = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?
        .and_hms_opt(u32::from(d.hour), u32::from(d.minute), u32::from(d.second))?;
    let offset = i64::from(d.tz_hour) * 3600 + i64::from(d.tz_minute) * 60;
    let offset = if d.tz_before_gmt { -offset } else { offset };
    let utc = local.checked_sub_signed(chrono::Duration::seconds(offset))?;
    Some(utc.and_utc())
}

/// A header's raw value unfolded to one line, `None` when absent or blank.
fn raw_header(message: &Message<'_>, name: &str) -> Option<String> {
    let value = message.header_raw(name)?;
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    (!value.is_empty()).then_some(value)
}

fn classify_headers(message: &Message<'_>, html_only: bool) -> ClassifyHeaders {
    let content_type = message
        .root_part()
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".to_string())
        .to_ascii_lowercase();
    ClassifyHeaders {
        list_id: raw_header(message, "List-Id"),
        list_unsubscribe: raw_header(message, "List-Unsubscribe"),
        list_post: raw_header(message, "List-Post"),
        precedence: raw_header(message, "Precedence").map(|p| p.to_ascii_lowercase()),
        auto_submitted: raw_header(message, "Auto-Submitted").map(|p| p.to_ascii_lowercase()),
        x_mailer: raw_header(message, "X-Mailer"),
        x_spam_flag: raw_header(message, "X-Spam-Flag"),
        x_spam_status: raw_header(message, "X-Spam-Status"),
        content_type,
        html_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_headerless_input_fail_with_a_reason() {
        let limits = Limits::default();
        assert_eq!(parse(b"", &limits), Err(ParseError::Empty));
        assert_eq!(parse(b" \r\n", &limits), Err(ParseError::Empty));
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        let mut warnings = Vec::new();
        let text = truncate("ééé".to_string(), 3, &mut warnings);
        assert_eq!(text, "é");
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn impossible_dates_are_none() {
        let d = mail_parser::DateTime {
            year: 2020,
            month: 13,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            tz_before_gmt: false,
            tz_hour: 0,
            tz_minute: 0,
        };
        assert!(to_utc(&d).is_none());
    }
}
