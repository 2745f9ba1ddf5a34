//! Rewriting of the `'` and `"` text operators, which pdf-extract skips.
//!
//! `(text) '` moves to the next line and shows `text`; `aw ac (text) "` also
//! sets the word and character spacing first (PDF 32000-1 §9.4.3).
//! Ghostscript writes whole pages with them, and pdf-extract 0.12 only knows
//! `Tj`, `TJ` and `T*`, so without this those pages lose every line but the
//! first. The rewrite uses only the operators pdf-extract understands.

use pdf_extract::content::{Content, Operation};
use pdf_extract::{Document, ObjectId};

/// Replaces `'` and `"` in every page's content stream by their equivalent
/// `Tw`, `Tc`, `T*` and `Tj` operations. Pages without them are untouched;
/// a page whose content cannot be decoded is left for pdf-extract to judge.
pub(crate) fn expand_quote_operators(document: &mut Document) {
    let page_ids: Vec<ObjectId> = document.get_pages().into_values().collect();
    for page_id in page_ids {
        let Ok(content) = document.get_page_content(page_id) else {
            continue;
        };
        // A cheap filter: most pages have no quote character at all.
        if !content.iter().any(|&byte| byte == b'\'' || byte == b'"') {
            continue;
        }
        let Ok(decoded) = Content::decode(&content) else {
            continue;
        };
        if !decoded.operations.iter().any(is_quote) {
            continue;
        }
        let rewritten = Content {
            operations: expand(decoded.operations),
        };
        if let Ok(encoded) = rewritten.encode() {
            // On failure the page keeps its content and loses those lines.
            let _ = document.change_page_content(page_id, encoded);
        }
    }
}

/// Returns whether an operation is `'` or `"`.
fn is_quote(operation: &Operation) -> bool {
    operation.operator == "'" || operation.operator == "\""
}

/// Returns the operations with every `'` and `"` expanded.
fn expand(operations: Vec<Operation>) -> Vec<Operation> {
    let mut expanded = Vec::with_capacity(operations.len() + operations.len() / 2);
    for operation in operations {
        match (operation.operator.as_str(), operation.operands.as_slice()) {
            ("'", [_]) => {
                expanded.push(Operation::new("T*", Vec::new()));
                expanded.push(Operation::new("Tj", operation.operands));
            }
            ("\"", [word_spacing, character_spacing, text]) => {
                expanded.push(Operation::new("Tw", vec![word_spacing.clone()]));
                expanded.push(Operation::new("Tc", vec![character_spacing.clone()]));
                expanded.push(Operation::new("T*", Vec::new()));
                expanded.push(Operation::new("Tj", vec![text.clone()]));
            }
            _ => expanded.push(operation),
        }
    }
    expanded
}

#[cfg(test)]
mod tests {
    use pdf_extract::Object;

    use super::*;

    #[test]
    fn quotes_become_next_line_and_show_text() {
        let content = Content::decode(b"BT (a) Tj (b) ' 1 2 (c) \" ET").unwrap();
        let operators: Vec<String> = expand(content.operations)
            .into_iter()
            .map(|operation| operation.operator)
            .collect();
        assert_eq!(
            operators,
            ["BT", "Tj", "T*", "Tj", "Tw", "Tc", "T*", "Tj", "ET"]
        );
    }

    #[test]
    fn malformed_quote_is_kept() {
        let operations = vec![Operation::new(
            "'",
            vec![Object::Integer(1), Object::Integer(2)],
        )];
        assert_eq!(expand(operations)[0].operator, "'");
    }
}
