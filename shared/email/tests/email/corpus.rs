//! The real e-mail corpus in `testdata/email/` and its manifests.

use std::path::{Path, PathBuf};

use mail_parser::mailbox::mbox::MessageIterator;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/email")
}

/// One manifest row.
pub struct Entry {
    pub file: String,
    pub category: String,
    pub thread: String,
}

pub fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(root().join("manifest.tsv")).expect("manifest.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Entry {
                file: cols[0].to_string(),
                category: cols[3].to_string(),
                thread: cols.get(5).copied().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// (file, question, answer) rows of `facts.tsv`.
pub fn facts() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("facts.tsv")).expect("facts.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
            )
        })
        .collect()
}

/// The raw messages of one manifest file: one for `.eml`, each message of
/// an `.mbox` (split at `From ` lines).
pub fn messages(file: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(root().join(file)).expect("corpus file");
    if file.ends_with(".mbox") {
        MessageIterator::new(&bytes[..])
            .map(|m| m.expect("mbox message").unwrap_contents())
            .collect()
    } else {
        vec![bytes]
    }
}

/// Every corpus message with its manifest row.
pub fn all() -> Vec<(Entry, Vec<u8>)> {
    manifest()
        .into_iter()
        .flat_map(|entry| {
            messages(&entry.file)
                .into_iter()
                .map(|raw| {
                    (
                        Entry {
                            file: entry.file.clone(),
                            category: entry.category.clone(),
                            thread: entry.thread.clone(),
                        },
                        raw,
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
