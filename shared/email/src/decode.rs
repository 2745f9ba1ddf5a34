//! Repairs for text mail-parser decodes wrongly in real mail: raw 8-bit
//! header fields (no RFC 2047) and bodies whose declared charset is wrong.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use mail_parser::{HeaderName, Message, MessagePart, MimeHeaders};

/// The message's declared body charset, if encoding_rs knows it and it is
/// not UTF-8: the best guess for raw 8-bit header bytes from the same
/// mail client.
fn body_encoding(message: &Message<'_>) -> Option<&'static Encoding> {
    message
        .parts
        .iter()
        .filter_map(|p| p.content_type()?.attribute("charset"))
        .filter_map(|label| Encoding::for_label(label.trim().as_bytes()))
        .find(|e| *e != UTF_8)
}

/// The Subject decoded from its raw bytes when they are not UTF-8 (mail-parser
/// would replace each byte with U+FFFD): the body's charset, else
/// Windows-1252, the usual charset of such mail.
pub(crate) fn raw_8bit_subject(message: &Message<'_>) -> Option<String> {
    let header = message
        .root_part()
        .headers
        .iter()
        .find(|h| h.name == HeaderName::Subject)?;
    let raw = message
        .raw_message()
        .get(header.offset_start as usize..header.offset_end as usize)?;
    if let Ok(text) = std::str::from_utf8(raw) {
        // Encoded words: decoded here only where mail-parser's per-word
        // decoding broke a character split across words.
        let parsed = message.subject().unwrap_or_default();
        return (text.contains("=?") && parsed.contains('\u{FFFD}'))
            .then(|| crate::rfc2047::decode(text));
    }
    let encoding = body_encoding(message).unwrap_or(WINDOWS_1252);
    let (text, _, _) = encoding.decode(raw);
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The body of a text part as UTF-8 when it was sent unencoded (7bit/8bit),
/// labelled with another charset, and its bytes are valid non-ASCII UTF-8:
/// the label is wrong (a common spam and webmail fault) and UTF-8 is right.
pub(crate) fn mislabelled_utf8(
    message: &Message<'_>,
    part: &MessagePart<'_>,
) -> Option<(String, String)> {
    let encoded = part
        .content_transfer_encoding()
        .map(|e| e.trim().to_ascii_lowercase())
        .is_some_and(|e| !matches!(e.as_str(), "7bit" | "8bit" | "binary" | "7-bit" | "8-bit"));
    if encoded {
        return None;
    }
    let label = part.content_type()?.attribute("charset")?.trim();
    if Encoding::for_label(label.as_bytes()).is_none_or(|e| e == UTF_8) {
        return None;
    }
    let raw = message
        .raw_message()
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
    if raw.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    Some((text.replace("\r\n", "\n"), label.to_string()))
}

/// The text of a body part mail-parser could not decode, as a mailing list
/// leaves it when it appends a plain footer to a base64 body: the base64
/// lines are decoded, the rest kept as text, all in the declared charset.
/// Returns the text and whether it is HTML.
pub(crate) fn recover_text_part(
    message: &Message<'_>,
    part: &MessagePart<'_>,
) -> Option<(String, bool)> {
    use base64::Engine;
    let ct = part.content_type()?;
    if !part.is_encoding_problem || !ct.ctype().eq_ignore_ascii_case("text") {
        return None;
    }
    let is_html = ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html"));
    let raw = message
        .raw_message()
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
    let is_base64 = part
        .content_transfer_encoding()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
    let (body, tail) = if is_base64 {
        let mut encoded = Vec::new();
        let mut consumed = 0;
        for line in raw.split_inclusive(|b| *b == b'\n') {
            let trimmed = line.trim_ascii();
            if !trimmed.is_empty()
                && !trimmed
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                break;
            }
            encoded.extend_from_slice(trimmed);
            consumed += line.len();
        }
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine.decode(&encoded).ok()?;
        (decoded, raw.get(consumed..).unwrap_or_default())
    } else {
        (raw.to_vec(), &[][..])
    };
    let encoding = ct
        .attribute("charset")
        .and_then(|l| Encoding::for_label(l.trim().as_bytes()))
        .unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(&body);
    let (tail, _, _) = encoding.decode(tail);
    Some((format!("{text}\n{tail}"), is_html))
}
