//! A small MIME tree for `format=full` and `attachments.get`: multipart
//! split by boundary, leaves decoded from base64 or quoted-printable. Lenient
//! by design: whatever it cannot read stays a leaf with its bytes as sent.

use base64::Engine;
use base64::alphabet::STANDARD as STANDARD_ALPHABET;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Value, json};

use crate::headers;

/// Nesting deeper than this is served as a leaf.
const MAX_DEPTH: usize = 16;

/// Marks attachment ids, which real ones resemble (long, opaque, `ANGjdJ...`).
const ATTACHMENT_ID_PREFIX: &str = "ANGjdJ";

/// One MIME part, numbered as Gmail numbers them (`""`, `"0"`, `"1.0"`, ...).
#[derive(Debug, Clone)]
pub struct Part {
    pub part_id: String,
    pub mime_type: String,
    pub filename: String,
    pub headers: Vec<(String, String)>,
    /// The decoded body of a leaf; empty for a multipart container.
    pub body: Vec<u8>,
    pub parts: Vec<Part>,
}

impl Part {
    /// Parses a message (or a part's bytes) into a tree.
    pub fn parse(raw: &[u8]) -> Self {
        parse_part(raw, String::new(), 0)
    }

    /// Returns whether Gmail would serve this part's body by `attachmentId`.
    pub fn is_attachment(&self) -> bool {
        self.parts.is_empty() && !self.filename.is_empty()
    }

    /// Returns the part with this id, searching the whole tree.
    pub fn find(&self, part_id: &str) -> Option<&Part> {
        if self.part_id == part_id {
            return Some(self);
        }
        self.parts.iter().find_map(|part| part.find(part_id))
    }

    /// Returns Gmail's `MessagePart` JSON for the tree; attachment bodies
    /// carry an `attachmentId` and no `data`.
    pub fn to_json(&self, message_id: &str) -> Value {
        let headers: Vec<Value> = self
            .headers
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let body = if !self.parts.is_empty() {
            json!({"size": 0})
        } else if self.is_attachment() {
            json!({"attachmentId": attachment_id(message_id, &self.part_id), "size": self.body.len()})
        } else if self.body.is_empty() {
            json!({"size": 0})
        } else {
            json!({"size": self.body.len(), "data": URL_SAFE.encode(&self.body)})
        };
        let mut part = json!({
            "partId": self.part_id,
            "mimeType": self.mime_type,
            "filename": self.filename,
            "headers": headers,
            "body": body,
        });
        if !self.parts.is_empty() {
            part["parts"] = self
                .parts
                .iter()
                .map(|child| child.to_json(message_id))
                .collect();
        }
        part
    }
}

/// Returns the attachment id of a part of a message.
pub fn attachment_id(message_id: &str, part_id: &str) -> String {
    format!(
        "{ATTACHMENT_ID_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!("{message_id}:{part_id}"))
    )
}

/// Returns the (message id, part id) an attachment id names.
pub fn parse_attachment_id(attachment_id: &str) -> Option<(String, String)> {
    let encoded = attachment_id.strip_prefix(ATTACHMENT_ID_PREFIX)?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let (message_id, part_id) = text.split_once(':')?;
    Some((message_id.to_owned(), part_id.to_owned()))
}

fn parse_part(raw: &[u8], part_id: String, depth: usize) -> Part {
    let fields = headers::header_fields(raw);
    let (_, body) = headers::split_head_body(raw);
    let content_type = headers::header(&fields, "Content-Type").unwrap_or("text/plain");
    let mime_type = content_type
        .split(';')
        .next()
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "text/plain".to_owned());
    let filename = headers::header(&fields, "Content-Disposition")
        .and_then(|value| parameter(value, "filename"))
        .or_else(|| parameter(content_type, "name"))
        .unwrap_or_default();
    let boundary = parameter(content_type, "boundary");
    if let (true, Some(boundary), true) = (
        mime_type.starts_with("multipart/"),
        boundary,
        depth < MAX_DEPTH,
    ) {
        let parts = split_multipart(body, &boundary)
            .into_iter()
            .enumerate()
            .map(|(index, child)| {
                let child_id = if part_id.is_empty() {
                    index.to_string()
                } else {
                    format!("{part_id}.{index}")
                };
                parse_part(child, child_id, depth + 1)
            })
            .collect();
        return Part {
            part_id,
            mime_type,
            filename,
            headers: fields,
            body: Vec::new(),
            parts,
        };
    }
    let encoding = headers::header(&fields, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "base64" => decode_base64(body).unwrap_or_else(|| body.to_vec()),
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_vec(),
    };
    Part {
        part_id,
        mime_type,
        filename,
        headers: fields,
        body: decoded,
        parts: Vec::new(),
    }
}

/// Returns a header parameter (`name=value` or `name="value"`), case-insensitive.
fn parameter(header_value: &str, name: &str) -> Option<String> {
    header_value.split(';').skip(1).find_map(|item| {
        let (key, value) = item.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// Returns the bodies between `--boundary` lines, without the line break
/// that belongs to the delimiter.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive(|byte| *byte == b'\n') {
        let trimmed = line.trim_ascii_end();
        if trimmed.starts_with(delimiter.as_bytes()) {
            if let Some(begin) = start {
                let mut end = offset;
                if body[..end].ends_with(b"\r\n") {
                    end -= 2;
                } else if body[..end].ends_with(b"\n") {
                    end -= 1;
                }
                parts.push(&body[begin..end.max(begin)]);
            }
            if trimmed == format!("{delimiter}--").as_bytes() {
                return parts;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    if let Some(begin) = start {
        parts.push(&body[begin..]);
    }
    parts
}

fn decode_base64(body: &[u8]) -> Option<Vec<u8>> {
    let engine = GeneralPurpose::new(
        &STANDARD_ALPHABET,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    engine.decode(compact).ok()
}

fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(body.len());
    let mut index = 0;
    while index < body.len() {
        let byte = body[index];
        if byte != b'=' {
            decoded.push(byte);
            index += 1;
            continue;
        }
        let rest = &body[index + 1..];
        if rest.starts_with(b"\r\n") {
            index += 3;
        } else if rest.starts_with(b"\n") {
            index += 2;
        } else if let Some(value) = rest
            .get(..2)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(value);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_multipart_with_an_attachment() {
        let raw = b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--inner--\r\n--outer\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRg==\r\n--outer--\r\n";
        let tree = Part::parse(raw);
        assert_eq!(tree.part_id, "");
        assert_eq!(tree.parts.len(), 2);
        let plain = tree.find("0.0").expect("0.0");
        assert_eq!(plain.body, "café au lait".as_bytes());
        assert_eq!(tree.find("0.1").expect("0.1").mime_type, "text/html");
        let pdf = tree.find("1").expect("1");
        assert!(pdf.is_attachment());
        assert_eq!(pdf.body, b"%PDF");
        let id = attachment_id("18c0000000100abc", "1");
        assert_eq!(
            parse_attachment_id(&id),
            Some(("18c0000000100abc".to_owned(), "1".to_owned()))
        );
    }
}
