//! Charset labels mail-parser cannot decode.
//!
//! mail-parser silently falls back to lossy UTF-8 for a label it does not
//! know; pai records that as a warning so a garbled mail can be explained.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Message, MimeHeaders};

/// Labels that need no decoder (UTF-8 is mail-parser's native form).
fn is_native(label: &str) -> bool {
    matches!(
        label.to_ascii_lowercase().as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "ansi_x3.4-1968" | "7bit" | "8bit"
    )
}

fn check(label: &str, warnings: &mut Vec<String>) {
    let label = label.trim().trim_matches('"');
    // RFC 2231 language suffix: "utf-8*en".
    let label = label.split('*').next().unwrap_or(label);
    if label.is_empty() || is_native(label) || charset_decoder(label.as_bytes()).is_some() {
        return;
    }
    let warning = format!("unknown charset {label}: decoded as UTF-8 lossy");
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

/// Records a warning for every unknown charset in body parts and in RFC 2047
/// encoded words of the header fields.
pub(crate) fn check_message(message: &Message<'_>, warnings: &mut Vec<String>) {
    for part in &message.parts {
        let is_text = part
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("text"));
        if let Some(label) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && is_text
        {
            check(label, warnings);
        }
    }
    for (_, value) in message.headers_raw() {
        let mut rest = value;
        while let Some(start) = rest.find("=?") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('?') else { break };
            check(&after[..end], warnings);
            rest = &after[end..];
        }
    }
}
