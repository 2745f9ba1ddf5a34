//! RFC 2047 encoded words decoded the way mail clients do in practice:
//! adjacent words in the same charset are joined *before* charset decoding,
//! so a UTF-8 character split across two words (invalid, but common) comes
//! out whole. mail-parser decodes each word alone and yields U+FFFD there.

use base64::Engine;
use encoding_rs::{Encoding, UTF_8};

struct Word<'a> {
    charset: &'a str,
    bytes: Vec<u8>,
}

/// Parses `=?charset?Q|B?text?=` at the start of `s`; returns the word and
/// its length in `s`.
fn encoded_word(s: &str) -> Option<(Word<'_>, usize)> {
    let rest = s.strip_prefix("=?")?;
    let (label, rest) = rest.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if text.contains(char::is_whitespace) || label.contains(char::is_whitespace) {
        return None;
    }
    // "=?" label "?" encoding "?" text "?="
    let len = 2 + label.len() + 1 + encoding.len() + 1 + end + 2;
    // RFC 2231 language suffix: "utf-8*sl".
    let charset = label.split('*').next().unwrap_or(label);
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .ok()?,
        "Q" | "q" => q_decode(text),
        _ => return None,
    };
    Some((Word { charset, bytes }, len))
}

fn q_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn flush(words: &mut Vec<Word<'_>>, out: &mut String) {
    let Some(first) = words.first() else { return };
    let encoding = Encoding::for_label(first.charset.trim().as_bytes()).unwrap_or(UTF_8);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.bytes.iter().copied()).collect();
    out.push_str(&encoding.decode(&bytes).0);
    words.clear();
}

/// Decodes the encoded words of an unstructured header value (Subject).
pub fn decode(raw: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<Word<'_>> = Vec::new();
    let mut gap = String::new();
    let mut rest = raw;
    while !rest.is_empty() {
        if let Some((word, len)) = encoded_word(rest) {
            match pending.first() {
                // Whitespace between adjacent encoded words is dropped
                // (RFC 2047 section 6.2).
                None => out.push_str(&gap),
                Some(p) if !p.charset.eq_ignore_ascii_case(word.charset) => {
                    flush(&mut pending, &mut out);
                }
                Some(_) => {}
            }
            gap.clear();
            pending.push(word);
            rest = &rest[len..];
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            gap.push(c);
        } else {
            flush(&mut pending, &mut out);
            out.push_str(&gap);
            gap.clear();
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut pending, &mut out);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn joins_a_utf8_character_split_across_words() {
        let raw =
            "=?iso-8859-2*sl?Q?Doma=e8e?=\r\n  =?utf-8*sl?Q?_omre=C5?=     =?Utf-8*SL?q?=BEje?=";
        assert_eq!(decode(raw), "Domače omrežje");
    }

    #[test]
    fn plain_text_and_words_mix() {
        assert_eq!(decode("Re: =?UTF-8?B?w6k=?= ok"), "Re: é ok");
        assert_eq!(decode("no words here"), "no words here");
        assert_eq!(decode("=?x?Q?broken"), "=?x?Q?broken");
    }
}
