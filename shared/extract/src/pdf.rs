//! In-process text extraction with pdf-extract, page by page.

use std::panic::{self, AssertUnwindSafe};

use pdf_extract::{Document, OutputError, PlainTextOutput};
use serde::{Deserialize, Serialize};

use crate::{ExtractError, quotes, recover};

/// The text of one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The 1-based page number, as a reader of the PDF counts pages.
    pub number: u32,
    /// The page text in pdf-extract's reading order, lines ended by `\n`.
    pub text: String,
}

/// How far into the file the `%PDF-` header may start (some writers put junk
/// before it; readers such as poppler accept up to 1 KiB).
const HEADER_WINDOW: usize = 1024;

/// Fewer letters and digits than this per page, on average, means the pages
/// only carry images (a scan) or stray marks such as page numbers.
const MIN_ALPHANUMERIC_PER_PAGE: usize = 4;

/// A document with fewer letters and digits than this in all has no usable
/// text, however few pages it has.
const MIN_ALPHANUMERIC_TOTAL: usize = 16;

/// The most text one document may yield: a small compressed file can expand
/// to gigabytes of text (a decompression bomb), and the parent reads it all.
const MAX_TEXT_BYTES: usize = 64 << 20;

/// Extracts the text of every page of a PDF held in memory.
///
/// Returns one [`Page`] per page of the document, in order. A page whose
/// content cannot be read (a damaged stream, or a panic inside pdf-extract
/// that unwinds) comes back with empty text, so that the other pages are kept
/// and the page numbers still match the PDF; only when every page fails is
/// the whole document [`ExtractError::Corrupt`]. A PDF whose cross-reference
/// table is missing or broken (a truncated download) is re-indexed by
/// scanning for its objects, as poppler does.
///
/// This runs pdf-extract in the calling process, and pdf-extract can abort
/// the process on some inputs (an abort cannot be caught). Services call
/// [`crate::extract_isolated`] instead; only the child process calls this.
///
/// # Errors
/// [`ExtractError::NotPdf`] without a `%PDF-` header or any object,
/// [`ExtractError::Encrypted`] when an empty password does not open it,
/// [`ExtractError::Corrupt`] when it cannot be parsed or holds more than
/// 64 MiB of text, and
/// [`ExtractError::NoTextLayer`] when the pages hold essentially no letters
/// or digits.
pub fn extract_pages(bytes: &[u8]) -> Result<Vec<Page>, ExtractError> {
    if !looks_like_pdf(bytes) {
        return Err(ExtractError::NotPdf);
    }
    let mut document = load(bytes)?;
    // lopdf already tried the empty user password while loading; when that
    // worked it removed /Encrypt from the trailer.
    if document.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    if let Err(reason) = guarded(|| quotes::expand_quote_operators(&mut document)) {
        eprintln!("pai-extract: quote operators left as they are: {reason}");
    }
    let numbers: Vec<u32> = document.get_pages().into_keys().collect();
    if numbers.is_empty() {
        return Err(ExtractError::Corrupt("it has no pages".to_owned()));
    }

    let mut pages = Vec::with_capacity(numbers.len());
    let mut first_failure = None;
    let mut failures = 0;
    let mut text_bytes = 0;
    for number in numbers {
        let text = match extract_page(&document, number) {
            Ok(text) => tidy(&text),
            Err(reason) => {
                failures += 1;
                eprintln!("pai-extract: page {number} skipped: {reason}");
                first_failure.get_or_insert(reason);
                String::new()
            }
        };
        text_bytes += text.len();
        if text_bytes > MAX_TEXT_BYTES {
            return Err(ExtractError::Corrupt(format!(
                "it holds more than {} MiB of text",
                MAX_TEXT_BYTES >> 20
            )));
        }
        pages.push(Page { number, text });
    }
    if failures == pages.len() {
        let reason = first_failure.unwrap_or_default();
        return Err(ExtractError::Corrupt(format!(
            "no page could be read ({reason})"
        )));
    }
    if !has_text_layer(&pages) {
        eprintln!(
            "pai-extract: almost no letters or digits on {} pages",
            pages.len()
        );
        return Err(ExtractError::NoTextLayer);
    }
    Ok(pages)
}

/// Returns whether the bytes start like a PDF and hold at least one object.
fn looks_like_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(HEADER_WINDOW)];
    find(head, b"%PDF-").is_some() && find(bytes, b"obj").is_some()
}

/// Returns the first position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Parses the document, re-indexing its objects when its xref is broken.
fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let error = match guarded(|| Document::load_mem(bytes)) {
        Ok(Ok(document)) => return Ok(document),
        Ok(Err(error)) => error.to_string(),
        Err(panic) => panic,
    };
    if let Some(repaired) = recover::rebuild_xref(bytes)
        && let Ok(Ok(document)) = guarded(|| Document::load_mem(&repaired))
        && !document.get_pages().is_empty()
    {
        eprintln!("pai-extract: the xref was rebuilt ({error})");
        return Ok(document);
    }
    Err(ExtractError::Corrupt(error))
}

/// Extracts one page, turning errors and panics into a reason.
fn extract_page(document: &Document, number: u32) -> Result<String, String> {
    let outcome = guarded(|| {
        let mut text = String::new();
        let mut output = PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(document, &mut output, number).map(|()| text)
    })?;
    outcome.map_err(|error| match error {
        OutputError::PdfError(error) => error.to_string(),
        other @ (OutputError::FormatError(_) | OutputError::IoError(_)) => other.to_string(),
    })
}

/// Runs `work`, catching a panic that unwinds and returning its message.
fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        format!("the parser gave up: {message}")
    })
}

/// Normalises the page text: Unix line ends, no trailing spaces, no runs of
/// more than one blank line, control characters as spaces, and typographic
/// ligatures (`ﬁ`, `ﬂ`, ...) as their letters so that words match searches.
fn tidy(text: &str) -> String {
    let mut tidy = String::with_capacity(text.len());
    let mut blank_lines = 0;
    for line in text.lines() {
        let mut clean = String::with_capacity(line.len());
        for character in line.chars() {
            match character {
                '\u{fb00}' => clean.push_str("ff"),
                '\u{fb01}' => clean.push_str("fi"),
                '\u{fb02}' => clean.push_str("fl"),
                '\u{fb03}' => clean.push_str("ffi"),
                '\u{fb04}' => clean.push_str("ffl"),
                '\u{fb05}' | '\u{fb06}' => clean.push_str("st"),
                control if control.is_control() => clean.push(' '),
                other => clean.push(other),
            }
        }
        let line = clean.trim_end();
        if line.is_empty() {
            blank_lines += 1;
            if blank_lines > 1 || tidy.is_empty() {
                continue;
            }
        } else {
            blank_lines = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    let end = tidy.trim_end().len();
    tidy.truncate(end);
    tidy
}

/// Returns whether the pages carry real text rather than a scan's nothing.
fn has_text_layer(pages: &[Page]) -> bool {
    let alphanumeric: usize = pages
        .iter()
        .map(|page| page.text.chars().filter(|c| c.is_alphanumeric()).count())
        .sum();
    alphanumeric >= MIN_ALPHANUMERIC_TOTAL
        && alphanumeric >= MIN_ALPHANUMERIC_PER_PAGE * pages.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_file_is_not_a_pdf() {
        let bytes = b"%PDF-1.3\nThis is not a valid PDF file\n%%EOF\n";
        assert!(matches!(extract_pages(bytes), Err(ExtractError::NotPdf)));
        assert!(matches!(extract_pages(b"hello"), Err(ExtractError::NotPdf)));
        assert!(matches!(extract_pages(b""), Err(ExtractError::NotPdf)));
    }

    #[test]
    fn tidy_drops_trailing_space_and_extra_blank_lines() {
        assert_eq!(tidy("\n\na  \n\n\n\nb\r\n\x0c"), "a\n\nb");
        assert_eq!(tidy("\u{fb01}gure e\u{fb03}cient"), "figure efficient");
    }
}
