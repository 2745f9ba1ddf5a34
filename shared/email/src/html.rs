//! HTML bodies to readable plain text.
//!
//! `html2text` parses with html5ever (the browser algorithm), so broken
//! newsletter markup still renders; it drops `<script>`/`<style>`, decodes
//! entities and keeps link targets as footnotes, which matter for search
//! ("which URL ..."). mail-parser's own converter is the fallback when
//! html2text refuses the input.

/// Wide enough that sentences are not wrapped mid-fact; overflow is allowed
/// so very wide tables never fail the conversion.
const WIDTH: usize = 200;

/// Converts an HTML document or fragment to plain text without tags.
pub(crate) fn html_to_text(html: &str) -> String {
    let rendered = html2text::config::plain()
        .allow_width_overflow()
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), WIDTH)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html));
    tidy(&rendered)
}

/// Trims line ends and collapses runs of blank lines (table layouts in
/// newsletters leave many), so the text chunks well.
pub(crate) fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_tags_scripts_and_styles_and_decodes_entities() {
        let text = html_to_text(
            "<html><head><style>p{color:red}</style><script>alert(1)</script></head>\
             <body><p>Fish &amp; chips &eacute;t&eacute;</p><div>second</div></body></html>",
        );
        assert!(text.contains("Fish & chips été"), "{text}");
        assert!(text.contains("second"));
        assert!(!text.contains('<'));
        assert!(!text.contains("alert"));
        assert!(!text.contains("color:red"));
    }

    #[test]
    fn tidy_collapses_blank_runs() {
        assert_eq!(tidy("a  \n\n\n\n b\n"), "a\n\n b");
    }
}
