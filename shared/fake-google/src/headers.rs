//! Just enough RFC 5322 header reading for the fake: threading headers, the
//! date, and a snippet. Real parsing is the job of the code under test.

use chrono::DateTime;

/// Returns the unfolded header fields of a message, in order, up to the first
/// empty line. Values are decoded lossily as UTF-8 and left otherwise raw.
pub fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let (head, _) = split_head_body(raw);
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        // An mbox "From " separator line is not a header field.
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.contains(' ') {
            continue;
        }
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
    fields
}

/// Returns the header part and the body of a raw message (split at the first
/// empty line; CRLF and LF both accepted).
pub fn split_head_body(raw: &[u8]) -> (&[u8], &[u8]) {
    // A MIME part may have no header at all: it starts with the empty line.
    if let Some(body) = raw
        .strip_prefix(b"\r\n")
        .or_else(|| raw.strip_prefix(b"\n"))
    {
        return (&[], body);
    }
    let mut index = 0;
    while index < raw.len() {
        if raw[index..].starts_with(b"\n\n") {
            return (&raw[..index + 1], &raw[index + 2..]);
        }
        if raw[index..].starts_with(b"\r\n\r\n") {
            return (&raw[..index + 2], &raw[index + 4..]);
        }
        index += 1;
    }
    (raw, &[])
}

/// Returns the first value of the named header (case-insensitive).
pub fn header<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Returns every `<message-id>` token in a header value.
pub fn message_ids(value: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let id = rest[start + 1..start + end].trim();
        if !id.is_empty() {
            ids.push(id.to_owned());
        }
        rest = &rest[start + end + 1..];
    }
    ids
}

/// Returns the `Date` header as epoch milliseconds, or `None` when it is
/// missing or unreadable. Trailing comments such as `(PST)` are ignored.
pub fn date_millis(fields: &[(String, String)]) -> Option<i64> {
    let value = header(fields, "Date")?;
    let without_comment = match value.find('(') {
        Some(index) => value[..index].trim(),
        None => value.trim(),
    };
    let parsed = DateTime::parse_from_rfc2822(without_comment).ok()?;
    Some(parsed.timestamp_millis())
}

/// Returns a Gmail-like snippet: the start of the body text, whitespace
/// collapsed, at most 200 characters. Only a top-level plain-text body in
/// 7bit or 8bit is read; for anything else (multipart, base64, quoted
/// printable) the subject stands in, which is enough for a fake.
pub fn snippet(raw: &[u8], fields: &[(String, String)]) -> String {
    let content_type = header(fields, "Content-Type").unwrap_or("text/plain");
    let encoding = header(fields, "Content-Transfer-Encoding").unwrap_or("7bit");
    let plain = content_type.to_ascii_lowercase().starts_with("text/plain");
    let readable = matches!(
        encoding.trim().to_ascii_lowercase().as_str(),
        "7bit" | "8bit"
    );
    let source = if plain && readable {
        String::from_utf8_lossy(split_head_body(raw).1).into_owned()
    } else {
        header(fields, "Subject").unwrap_or_default().to_owned()
    };
    source
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_folded_headers_and_ids() {
        let raw = b"From x Tue Nov 16 14:51:17 2010\nSubject: a\n  b\nReferences: <1@x>\n <2@y>\nDate: Tue, 17 Nov 2009 18:04:31 -0800 (PST)\n\nbody\n";
        let fields = header_fields(raw);
        assert_eq!(header(&fields, "subject"), Some("a b"));
        assert_eq!(
            message_ids(header(&fields, "References").unwrap_or_default()),
            vec!["1@x".to_owned(), "2@y".to_owned()]
        );
        assert_eq!(date_millis(&fields), Some(1_258_509_871_000));
        assert_eq!(snippet(raw, &fields), "body");
    }
}
