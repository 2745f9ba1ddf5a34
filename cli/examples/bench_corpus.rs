//! `make bench-corpus`: ingest and search figures on the real PDF corpus,
//! through the whole stack (gateway → documents → search → inference) in
//! one release process, on a fresh database.
//!
//! Prints: ingest pages/s from upload to `indexed`; recall@5 over every
//! fact of the corpus manifests for `bm25`, `vector` and `hybrid` with all
//! documents in one account; and search p50/p99 at 16 concurrent clients,
//! idle and while a bulk ingest runs beside it.

mod common;

use std::time::Instant;

use common::{
    Bench, CLIENTS, corpus_dir, facts, latency, normalize, percentile, report, stage_means,
    stage_seconds,
};

const SEARCH_STAGES: &str = "pai_search_stage_seconds";
use serde_json::Value;

const LATENCY_SECONDS: u64 = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench = Bench::start().await?;
    let client = bench.user("bench").await?;

    // 1. Ingest the corpus.
    let started = Instant::now();
    let (files, documents) = client.ingest_corpus().await?;
    let seconds = started.elapsed().as_secs_f64();
    let pages: u64 = documents.iter().filter_map(|d| d["pages"].as_u64()).sum();
    let chunks: u64 = documents.iter().filter_map(|d| d["chunks"].as_u64()).sum();
    println!(
        "ingest: {} files, {pages} pages, {chunks} chunks in {seconds:.1} s = {:.1} pages/s",
        files.len(),
        pages as f64 / seconds
    );

    // 2. Recall@5 with every document in one account.
    let by_file: std::collections::HashMap<String, &Value> = files
        .iter()
        .zip(&documents)
        .filter_map(|(f, d)| Some((f.file_name()?.to_str()?.to_owned(), d)))
        .collect();
    let facts: Vec<common::Fact> = facts("pdf")?
        .into_iter()
        .filter(|f| {
            by_file
                .get(&f.file)
                .is_some_and(|d| d["status"] == "indexed")
        })
        .collect();
    println!(
        "recall@5 over {} facts of indexed documents, all in one account:",
        facts.len()
    );
    for mode in ["bm25", "vector", "hybrid"] {
        let mut found = 0;
        for fact in &facts {
            let body = client.search(&fact.question, mode).await?;
            let wanted = normalize(&fact.answer);
            let doc_id = &by_file[&fact.file]["id"];
            let hit = body["hits"].as_array().into_iter().flatten().any(|h| {
                &h["source"]["id"] == doc_id
                    && normalize(h["text"].as_str().unwrap_or_default()).contains(&wanted)
            });
            found += usize::from(hit);
        }
        println!(
            "  {mode:<7} {found}/{} = {:.2}",
            facts.len(),
            found as f64 / facts.len() as f64
        );
    }

    // 3. Search latency, idle and beside a bulk ingest.
    let queries: Vec<String> = facts.iter().map(|f| f.question.clone()).collect();
    let before = stage_seconds(&bench, SEARCH_STAGES).await?;
    let idle = latency(std::slice::from_ref(&client), &queries, LATENCY_SECONDS).await?;
    let after = stage_seconds(&bench, SEARCH_STAGES).await?;
    println!(
        "{}",
        report(
            &format!("search hybrid k=5, {CLIENTS} clients, idle"),
            &idle
        )
    );
    println!(
        "  mean ms per query inside search: {}",
        stage_means(&before, &after, idle.len())
    );
    let long = corpus_dir("pdf").join("dev/long_geotopo_skript_de_117p.pdf");
    let mut bulk = Vec::new();
    for _ in 0..3 {
        bulk.push(client.upload(&long).await?);
    }
    let before = stage_seconds(&bench, SEARCH_STAGES).await?;
    let busy = latency(std::slice::from_ref(&client), &queries, LATENCY_SECONDS).await?;
    let after = stage_seconds(&bench, SEARCH_STAGES).await?;
    println!(
        "{} (p99 ratio to idle {:.2}, target < 2)",
        report(
            &format!("search hybrid k=5, {CLIENTS} clients, during a bulk ingest"),
            &busy
        ),
        percentile(&busy, 0.99) / percentile(&idle, 0.99).max(0.001)
    );
    println!(
        "  mean ms per query inside search: {}",
        stage_means(&before, &after, busy.len())
    );
    client.wait_all(&bulk).await?;

    bench.finish().await
}
