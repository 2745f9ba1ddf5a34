//! The real PDF corpus end to end: every file of `testdata/pdf/dev`
//! ends `indexed` (with its manifest category) or `failed` with the reason
//! its edge note implies, and every fact of an indexed document is found in
//! the top 5 of `GET /api/search` for its question, asked by the document's
//! owner. Each document has its own owner here: the manifests' questions
//! ("What is the invoice total?") do not say which of five invoices they
//! mean. Recall with every document in one account is measured by
//! `make bench-search`.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{corpus, normalize, spawn_app};

struct Entry {
    file: String,
    category: String,
    notes: String,
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus("pdf/manifest.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Entry {
                file: cols[0].trim_start_matches("dev/").to_owned(),
                category: cols[3].to_owned(),
                notes: cols[7].to_owned(),
            }
        })
        .collect()
}

/// (file, question, answer)
fn facts() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(corpus("pdf/facts.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            (
                cols[0].trim_start_matches("dev/").to_owned(),
                cols[1].to_owned(),
                cols[2].to_owned(),
            )
        })
        .collect()
}

/// What the edge note implies: `Ok(())` for "must be indexed", or the words
/// the failure reason must contain. `None`: either outcome is acceptable.
fn expectation(entry: &Entry) -> Option<Result<(), &'static str>> {
    let notes = entry.notes.to_uppercase();
    if entry.category != "edge" {
        Some(Ok(()))
    } else if notes.contains("ENCRYPTED") {
        Some(Err("encrypted"))
    } else if notes.contains("SCANNED") {
        Some(Err("no text layer"))
    } else if notes.contains("HEADER") && notes.contains("NO OBJECTS") {
        Some(Err("not a valid pdf"))
    } else {
        // Corrupt, truncated, vertical Japanese: recovered or refused.
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_pdf_ends_as_its_manifest_says_and_its_facts_are_found() {
    let app = spawn_app().await;
    let entries = manifest();
    assert_eq!(entries.len(), 19);

    let mut owners = HashMap::new();
    let mut ids = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let user = app.register(&format!("owner{i}")).await;
        let token = user["access_token"].as_str().unwrap().to_owned();
        let doc = app.upload(&token, &entry.file).await;
        assert_eq!(doc["status"], "queued");
        ids.insert(entry.file.clone(), doc["id"].as_str().unwrap().to_owned());
        owners.insert(entry.file.clone(), token);
    }
    let mut documents: HashMap<String, Value> = HashMap::new();
    for entry in &entries {
        let doc = app
            .wait_document(&owners[&entry.file], &ids[&entry.file])
            .await;
        match expectation(entry) {
            Some(Ok(())) => {
                assert_eq!(doc["status"], "indexed", "{}: {doc}", entry.file);
                assert_eq!(doc["category"], entry.category.as_str(), "{}", entry.file);
                assert!(doc["chunks"].as_u64().unwrap() > 0, "{}", entry.file);
            }
            Some(Err(reason)) => {
                assert_eq!(doc["status"], "failed", "{}: {doc}", entry.file);
                let error = doc["error"].as_str().unwrap().to_lowercase();
                assert!(error.contains(reason), "{}: {error}", entry.file);
            }
            None => {
                let status = doc["status"].as_str().unwrap();
                assert!(
                    status == "indexed" || doc["error"].is_string(),
                    "{}: {doc}",
                    entry.file
                );
            }
        }
        documents.insert(entry.file.clone(), doc);
    }
    // Page counts of the documents pai indexed match the manifest's.
    let text = std::fs::read_to_string(corpus("pdf/manifest.tsv")).unwrap();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let file = cols[0].trim_start_matches("dev/");
        if cols[3] != "edge" {
            assert_eq!(documents[file]["pages"].to_string(), cols[4], "{file}");
        }
    }

    let mut misses = Vec::new();
    let mut reported = Vec::new();
    for (file, question, answer) in facts() {
        let doc = &documents[&file];
        if doc["status"] != "indexed" {
            continue;
        }
        let r = app.search(&owners[&file], &question, "&k=5").await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        let wanted = normalize(&answer);
        let found = r.body["hits"].as_array().unwrap().iter().any(|hit| {
            hit["source"]["id"] == doc["id"]
                && normalize(hit["text"].as_str().unwrap()).contains(&wanted)
        });
        if found {
            continue;
        }
        // English questions about vertical Japanese text: reported, not required
        // (the default embedding model is English-only).
        if file.contains("japanese") {
            reported.push(format!("{file}: {question}"));
        } else {
            misses.push(format!("{file}: {question} => {answer}"));
        }
    }
    if !reported.is_empty() {
        eprintln!("not found (reported only): {reported:#?}");
    }
    assert!(misses.is_empty(), "facts not in the top 5: {misses:#?}");
    app.finish().await;
}
