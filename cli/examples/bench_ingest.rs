//! `make bench-ingest` (with the `embed_bench` example): ingest throughput
//! from upload to `indexed`, through the whole stack in one release process.
//!
//! Two loads: every PDF of the dev corpus, then `COUNT` (default 500)
//! generated 10-page PDFs of real prose (the email corpus' bodies, 300 words
//! a page). For each it prints pages/s and chunks/s, and where the time
//! went, from the `pai_ingest_stage_seconds` histograms the services record:
//! extract (the `pai extract` child), embed, store (the `search.chunks`
//! transaction) and index (tantivy + usearch), as seconds summed over jobs.
//!
//! ```text
//! cargo run --release -p pai --example bench_ingest [COUNT]
//! ```

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{Bench, Client, prose_words, stage_seconds};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};
use serde_json::Value;

const PAGES: usize = 10;
const WORDS_PER_PAGE: usize = 300;
const WORDS_PER_LINE: usize = 12;

/// A PDF of `PAGES` pages of Helvetica text, `WORDS_PER_PAGE` words each.
fn generate_pdf(words: &[String], start: usize) -> anyhow::Result<Vec<u8>> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for page in 0..PAGES {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 10.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![56.into(), 780.into()]),
        ];
        let first = start + page * WORDS_PER_PAGE;
        let page_words: Vec<&str> = (first..first + WORDS_PER_PAGE)
            .map(|i| words[i % words.len()].as_str())
            .collect();
        for line in page_words.chunks(WORDS_PER_LINE) {
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(line.join(" "))],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode()?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        kids.push(Object::from(doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        })));
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Count" => i64::try_from(kids.len())?,
            "Kids" => kids,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes)?;
    Ok(bytes)
}

/// Prints throughput and the per-stage time of one load.
async fn report(
    bench: &Bench,
    label: &str,
    documents: &[Value],
    seconds: f64,
    before: &BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let indexed = documents
        .iter()
        .filter(|d| d["status"] == "indexed")
        .count();
    let pages: u64 = documents.iter().filter_map(|d| d["pages"].as_u64()).sum();
    let chunks: u64 = documents.iter().filter_map(|d| d["chunks"].as_u64()).sum();
    println!(
        "{label}: {} files ({indexed} indexed), {pages} pages, {chunks} chunks in {seconds:.1} s = {:.2} pages/s, {:.1} chunks/s",
        documents.len(),
        pages as f64 / seconds,
        chunks as f64 / seconds
    );
    let after = stage_seconds(bench, "pai_ingest_stage_seconds").await?;
    let stages: Vec<(String, f64)> = ["extract", "embed", "store", "index"]
        .iter()
        .map(|&stage| {
            let spent = after.get(stage).copied().unwrap_or(0.0)
                - before.get(stage).copied().unwrap_or(0.0);
            (stage.to_owned(), spent)
        })
        .collect();
    let total: f64 = stages.iter().map(|(_, s)| s).sum::<f64>().max(1e-9);
    let shares: Vec<String> = stages
        .iter()
        .map(|(stage, spent)| format!("{stage} {spent:.1} s ({:.0} %)", 100.0 * spent / total))
        .collect();
    println!(
        "  where the time went (summed over jobs): {}",
        shares.join(", ")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(500), |n| n.parse())?;
    let bench = Bench::start().await?;
    let client: Client = bench.user("ingest").await?;

    let before = stage_seconds(&bench, "pai_ingest_stage_seconds").await?;
    let started = Instant::now();
    let (_, documents) = client.ingest_corpus().await?;
    report(
        &bench,
        "corpus",
        &documents,
        started.elapsed().as_secs_f64(),
        &before,
    )
    .await?;

    let words = prose_words()?;
    anyhow::ensure!(!words.is_empty(), "no prose in the email corpus");
    let pdfs: Vec<Vec<u8>> = (0..count)
        .map(|i| generate_pdf(&words, i * 997))
        .collect::<anyhow::Result<_>>()?;
    let before = stage_seconds(&bench, "pai_ingest_stage_seconds").await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(count);
    for (i, pdf) in pdfs.into_iter().enumerate() {
        ids.push(
            client
                .upload_bytes(&format!("generated-{i}.pdf"), pdf)
                .await?,
        );
    }
    let uploaded = started.elapsed().as_secs_f64();
    let documents = client.wait_all(&ids).await?;
    println!("generated: {count} uploads accepted in {uploaded:.1} s");
    report(
        &bench,
        &format!("generated {PAGES}-page PDFs"),
        &documents,
        started.elapsed().as_secs_f64(),
        &before,
    )
    .await?;
    bench.finish().await
}
