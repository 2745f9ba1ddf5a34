//! Re-indexing of a PDF whose cross-reference table is lost.
//!
//! A download cut short loses the end of the file, where the xref table and
//! trailer live, so lopdf cannot find a single object even though most of
//! them are intact. Like poppler's reconstruction, this scans the bytes for
//! `N G obj` headers, finds the catalog, and appends a fresh xref table and
//! trailer so that the normal parser can read what survived.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::pdf::find;

/// Returns a copy of `bytes` with a rebuilt xref table and trailer appended,
/// or `None` when no object or no catalog is found.
///
/// Later definitions of an object number win, as in an incrementally updated
/// file. Objects inside object streams are not listed (lopdf expands the
/// streams it loads), so a catalog that only lives in an object stream is
/// not found.
pub(crate) fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    let objects = scan_objects(bytes);
    let (root_number, root_generation) = objects
        .iter()
        .filter(|(_, (offset, _))| is_catalog(&bytes[*offset..]))
        .map(|(number, (_, generation))| (*number, *generation))
        .next_back()?;
    let size = objects.keys().next_back()? + 1;

    let mut repaired = bytes.to_vec();
    repaired.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_offset = repaired.len();
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for number in 1..size {
        let entry = match objects.get(&number) {
            Some((offset, generation)) => format!("{offset:010} {generation:05} n \n"),
            None => "0000000000 00000 f \n".to_owned(),
        };
        table.push_str(&entry);
    }
    // Writing to a String cannot fail.
    let _ = write!(
        table,
        "trailer\n<< /Size {size} /Root {root_number} {root_generation} R >>\nstartxref\n{xref_offset}\n%%EOF\n"
    );
    repaired.extend_from_slice(table.as_bytes());
    Some(repaired)
}

/// Maps each object number to the offset and generation of its last header.
fn scan_objects(bytes: &[u8]) -> BTreeMap<u32, (usize, u16)> {
    let mut objects = BTreeMap::new();
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b" obj") {
        let keyword = from + found;
        from = keyword + 4;
        if let Some((start, number, generation)) = parse_header(bytes, keyword) {
            objects.insert(number, (start, generation));
        }
    }
    objects
}

/// Parses `N G` before the ` obj` at `keyword`, requiring the header to
/// start a line, and returns its offset, number and generation.
fn parse_header(bytes: &[u8], keyword: usize) -> Option<(usize, u32, u16)> {
    let after = bytes.get(keyword + 4).copied();
    if after.is_some_and(|byte| !(byte.is_ascii_whitespace() || b"<[/(".contains(&byte))) {
        return None;
    }
    let (generation_start, generation) = number_before(bytes, keyword)?;
    if generation_start == 0 || bytes[generation_start - 1] != b' ' {
        return None;
    }
    let (start, number) = number_before(bytes, generation_start - 1)?;
    let starts_line = start == 0 || matches!(bytes[start - 1], b'\n' | b'\r');
    if !starts_line {
        return None;
    }
    Some((
        start,
        u32::try_from(number).ok()?,
        u16::try_from(generation).ok()?,
    ))
}

/// Parses the decimal number that ends just before `end`.
fn number_before(bytes: &[u8], end: usize) -> Option<(usize, u64)> {
    let start = bytes[..end]
        .iter()
        .rposition(|byte| !byte.is_ascii_digit())
        .map_or(0, |position| position + 1);
    if start == end || end - start > 10 {
        return None;
    }
    let digits = std::str::from_utf8(&bytes[start..end]).ok()?;
    Some((start, digits.parse().ok()?))
}

/// Returns whether the object starting here is the document catalog.
fn is_catalog(object: &[u8]) -> bool {
    let end = find(object, b"endobj").unwrap_or(object.len()).min(4096);
    let body = &object[..end];
    find(body, b"/Catalog").is_some() && find(body, b"/Type").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_headers_at_line_starts_and_keeps_the_last() {
        let bytes = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\nx 2 0 obj\n12 0 obj<<>>\n1 0 obj\n<<>>";
        let text = std::str::from_utf8(bytes).unwrap();
        let objects = scan_objects(bytes);
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[&12], (text.find("12 0 obj").unwrap(), 0));
        assert_eq!(objects[&1], (text.rfind("1 0 obj").unwrap(), 0));
    }

    #[test]
    fn rebuild_needs_a_catalog() {
        assert!(rebuild_xref(b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n").is_none());
        let repaired = rebuild_xref(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n");
        let repaired = String::from_utf8(repaired.unwrap()).unwrap();
        assert!(repaired.contains("/Root 1 0 R"), "{repaired}");
    }
}
