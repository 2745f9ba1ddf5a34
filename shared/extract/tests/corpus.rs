//! Extraction, classification and chunking of the real PDF corpus in
//! `testdata/pdf`, always through the isolating child process.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on a broken corpus"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pai_extract::{
    Category, DEFAULT_OVERLAP_WORDS, DEFAULT_TARGET_WORDS, ExtractError, Limits, Page, chunk,
    classify, extract_isolated,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/pdf");
const CHILD: &str = env!("CARGO_BIN_EXE_pai-extract");

/// One row of `manifest.tsv`.
struct Document {
    file: String,
    category: String,
    pages: Option<usize>,
}

impl Document {
    fn path(&self) -> PathBuf {
        Path::new(CORPUS).join(&self.file)
    }

    fn is_edge(&self) -> bool {
        self.category == "edge"
    }

    fn name(&self) -> &str {
        self.file.rsplit('/').next().unwrap()
    }
}

/// Reads a TSV file into rows of named columns.
fn read_tsv(name: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join(name))
        .unwrap_or_else(|error| panic!("cannot read {CORPUS}/{name}: {error}"));
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .map(|line| {
            let fields = line.split('\t').map(str::to_owned);
            header
                .iter()
                .map(|name| (*name).to_owned())
                .zip(fields)
                .collect()
        })
        .collect()
}

fn manifest() -> Vec<Document> {
    read_tsv("manifest.tsv")
        .into_iter()
        .map(|row| Document {
            file: row["file"].clone(),
            category: row["category"].clone(),
            pages: row["pages"].parse().ok(),
        })
        .collect()
}

/// Maps each file to its facts' answers.
fn facts() -> HashMap<String, Vec<String>> {
    let mut facts: HashMap<String, Vec<String>> = HashMap::new();
    for row in read_tsv("facts.tsv") {
        facts
            .entry(row["file"].clone())
            .or_default()
            .push(row["answer"].clone());
    }
    facts
}

async fn extract(path: &Path) -> Result<Vec<Page>, ExtractError> {
    extract_isolated(Path::new(CHILD), &[], path, &Limits::default()).await
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Returns the answers that no chunk of the pages holds.
fn missing_facts(pages: &[Page], answers: &[String]) -> Vec<String> {
    let chunks: Vec<String> = chunk(pages, DEFAULT_TARGET_WORDS, DEFAULT_OVERLAP_WORDS)
        .iter()
        .map(|chunk| normalise(&chunk.text))
        .collect();
    answers
        .iter()
        .filter(|answer| {
            !chunks
                .iter()
                .any(|chunk| chunk.contains(&normalise(answer)))
        })
        .cloned()
        .collect()
}

#[test]
fn corpus_is_where_the_tests_expect_it() {
    let documents = manifest();
    assert!(
        documents.len() >= 19,
        "{} documents in the manifest",
        documents.len()
    );
    for document in &documents {
        assert!(
            document.path().is_file(),
            "{} is missing",
            document.path().display()
        );
    }
}

#[tokio::test]
async fn every_document_extracts_classifies_and_keeps_its_facts() {
    let facts = facts();
    let mut problems = Vec::new();
    let (mut total_pages, mut total_time, mut found, mut expected) = (0, Duration::ZERO, 0, 0);
    for document in manifest().iter().filter(|document| !document.is_edge()) {
        let started = Instant::now();
        let pages = match extract(&document.path()).await {
            Ok(pages) => pages,
            Err(error) => {
                problems.push(format!("{}: {error}", document.name()));
                continue;
            }
        };
        let elapsed = started.elapsed();
        total_pages += pages.len();
        total_time += elapsed;
        if Some(pages.len()) != document.pages {
            problems.push(format!(
                "{}: {} pages, manifest says {:?}",
                document.name(),
                pages.len(),
                document.pages
            ));
        }
        // The documents service passes the title, which defaults to the file name.
        let category = classify("", &pages);
        let with_title = classify(document.name(), &pages);
        for got in [category, with_title] {
            if got.as_str() != document.category {
                problems.push(format!(
                    "{}: classified {got}, manifest says {}",
                    document.name(),
                    document.category
                ));
            }
        }
        let answers = facts.get(&document.file).cloned().unwrap_or_default();
        let missing = missing_facts(&pages, &answers);
        expected += answers.len();
        found += answers.len() - missing.len();
        for answer in missing {
            problems.push(format!("{}: no chunk holds {answer:?}", document.name()));
        }
        println!(
            "{:48} {:3} pages {:>8.1?} {category}",
            document.name(),
            pages.len(),
            elapsed
        );
    }
    println!(
        "{total_pages} pages in {total_time:.2?} ({:.0} pages/s), {found}/{expected} facts in a chunk",
        total_pages as f64 / total_time.as_secs_f64()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn edge_documents_fail_with_their_reason_or_keep_surviving_facts() {
    let facts = facts();
    let mut problems = Vec::new();
    for document in manifest().iter().filter(|document| document.is_edge()) {
        let name = document.name();
        let outcome = extract(&document.path()).await;
        println!(
            "{name:48} {:?}",
            outcome.as_ref().map(Vec::len).map_err(ToString::to_string)
        );
        let answers = facts.get(&document.file).cloned().unwrap_or_default();
        let as_expected = match (name, &outcome) {
            (n, Err(ExtractError::Encrypted)) if n.starts_with("edge_encrypted") => true,
            (n, Err(ExtractError::NoTextLayer)) if n.starts_with("edge_scanned") => true,
            (n, Err(ExtractError::NotPdf)) if n.starts_with("edge_not_a_pdf") => true,
            (n, Err(ExtractError::Corrupt(_) | ExtractError::Crashed(_)))
                if n.starts_with("edge_corrupt") || n.starts_with("edge_truncated") =>
            {
                true
            }
            (n, Ok(pages)) if n.starts_with("edge_corrupt") || n.starts_with("edge_truncated") => {
                let missing = missing_facts(pages, &answers);
                missing.is_empty() || {
                    problems.push(format!("{name}: surviving facts lost: {missing:?}"));
                    true
                }
            }
            // pdf-extract cannot map the Adobe-Japan1 CIDs of this vertical
            // Japanese text without a ToUnicode map: reported, not required.
            (n, _) if n.starts_with("edge_japanese") => {
                if let Ok(pages) = &outcome {
                    println!("  facts not found: {:?}", missing_facts(pages, &answers));
                }
                true
            }
            _ => false,
        };
        if !as_expected {
            problems.push(format!(
                "{name}: unexpected {:?}",
                outcome.map(|pages| pages.len())
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn the_child_answers_the_truncated_census_with_its_first_pages() {
    let pages = extract(&Path::new(CORPUS).join("dev/edge_truncated_55pct_census_report.pdf"))
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(|page| page.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(pages[2].text.is_empty(), "page 3 was cut off");
    assert!(normalise(&pages[0].text).contains("38.3 million"));
}

#[tokio::test]
async fn a_child_past_its_timeout_is_killed() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = extract_isolated(
        Path::new("/bin/sh"),
        &["-c", "sleep 30", "sh"],
        Path::new("x.pdf"),
        &limits,
    )
    .await;
    assert!(
        matches!(outcome, Err(ExtractError::TimedOut)),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_child_killed_by_a_signal_is_a_crash() {
    let outcome = extract_isolated(
        Path::new("/bin/sh"),
        &["-c", "kill -ABRT $$", "sh"],
        Path::new("x.pdf"),
        &Limits::default(),
    )
    .await;
    assert!(
        matches!(outcome, Err(ExtractError::Crashed(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_child_over_its_memory_limit_is_a_crash() {
    let limits = Limits {
        memory_bytes: 24 << 20,
        ..Limits::default()
    };
    let path = Path::new(CORPUS).join("dev/long_geotopo_skript_de_117p.pdf");
    let outcome = extract_isolated(Path::new(CHILD), &[], &path, &limits).await;
    assert!(
        matches!(outcome, Err(ExtractError::Crashed(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn missing_file_and_missing_program_are_io_errors() {
    let outcome = extract(Path::new("/nonexistent/file.pdf")).await;
    assert!(matches!(outcome, Err(ExtractError::Io(_))), "{outcome:?}");
    let outcome = extract_isolated(
        Path::new("/nonexistent/pai"),
        &["extract"],
        Path::new("x.pdf"),
        &Limits::default(),
    )
    .await;
    assert!(matches!(outcome, Err(ExtractError::Io(_))), "{outcome:?}");
}

#[test]
fn in_process_extraction_of_the_edge_files_does_not_panic() {
    for document in manifest().iter().filter(|document| document.is_edge()) {
        let bytes = std::fs::read(document.path()).unwrap();
        // Panics inside pdf-extract are caught per page; only the parent's
        // own kinds of failure (timeout, crash, I/O) cannot happen here.
        let outcome = pai_extract::extract_pages(&bytes);
        assert!(
            matches!(
                outcome,
                Ok(_)
                    | Err(ExtractError::Encrypted
                        | ExtractError::NoTextLayer
                        | ExtractError::NotPdf
                        | ExtractError::Corrupt(_))
            ),
            "{}: {outcome:?}",
            document.name()
        );
    }
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        ExtractError::Encrypted.to_string(),
        "encrypted PDF (it needs a password to open)"
    );
    assert_eq!(
        ExtractError::NoTextLayer.to_string(),
        "no text layer (a scanned document; OCR is not supported yet)"
    );
    assert_eq!(ExtractError::NotPdf.to_string(), "not a valid PDF");
    assert_eq!(ExtractError::TimedOut.to_string(), "extraction timed out");
    assert_eq!(Category::LongForm.as_str(), "long_form");
}
