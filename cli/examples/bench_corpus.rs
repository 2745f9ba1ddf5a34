//! `make bench-corpus`: ingest and search figures on the real PDF corpus,
//! through the whole stack (gateway → documents → search → inference) in
//! one release process, on a fresh database.
//!
//! Prints: ingest pages/s from upload to `indexed`; recall@5 over every
//! fact of the corpus manifests for `bm25`, `vector` and `hybrid` with all
//! documents in one account; and search p50/p99 at 16 concurrent clients,
//! idle and while a bulk ingest runs beside it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pai::stack::{self, Service, Stack};
use pai_common::Env;
use serde_json::{Value, json};

const CLIENTS: usize = 16;
const LATENCY_SECONDS: u64 = 10;

struct Fact {
    file: String,
    question: String,
    answer: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/pdf")
}

fn facts() -> anyhow::Result<Vec<Fact>> {
    let text = std::fs::read_to_string(corpus_dir().join("facts.tsv"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Some(Fact {
                file: cols.first()?.trim_start_matches("dev/").to_owned(),
                question: (*cols.get(1)?).to_owned(),
                answer: (*cols.get(2)?).to_owned(),
            })
        })
        .collect())
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn upload(&self, path: &Path) -> anyhow::Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("doc.pdf");
        let part = reqwest::multipart::Part::bytes(std::fs::read(path)?)
            .file_name(name.to_owned())
            .mime_str("application/pdf")?;
        let body: Value = self
            .http
            .post(format!("{}/api/documents", self.base))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["id"]
            .as_str()
            .context("upload answered no id")?
            .to_owned())
    }

    async fn document(&self, id: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/api/documents/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    async fn search(&self, query: &str, mode: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/api/search", self.base))
            .query(&[("q", query), ("mode", mode), ("k", "5")])
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Waits until every document is indexed or failed; returns their rows.
    async fn wait_all(&self, ids: &[String]) -> anyhow::Result<Vec<Value>> {
        let mut done = Vec::new();
        for id in ids {
            loop {
                let doc = self.document(id).await?;
                if matches!(doc["status"].as_str(), Some("indexed" | "failed")) {
                    done.push(doc);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(done)
    }
}

async fn latency(
    client: &Client,
    queries: &[String],
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..CLIENTS).map(|worker| async move {
        let mut samples = Vec::new();
        let mut i = worker;
        while Instant::now() < deadline {
            let started = Instant::now();
            let body = client.search(&queries[i % queries.len()], "hybrid").await?;
            if !body["hits"].is_array() {
                bail!("search failed: {body}");
            }
            samples.push(started.elapsed());
            i += CLIENTS;
        }
        Ok(samples)
    });
    let mut all = Vec::new();
    for samples in futures::future::join_all(workers).await {
        all.extend(samples?);
    }
    all.sort();
    Ok(all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin = std::env::var("PAI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let data = std::env::temp_dir().join(format!("pai-bench-{id}"));
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let env = Env::from_pairs([
        ("DATABASE_URL", format!("{root}/pai_bench_{id}?{query}")),
        ("AMQP_EVENTS_EXCHANGE", format!("pai.bench.{id}")),
        ("JWT_SECRET_KEY", format!("bench-secret-{id}")),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("AUTH_GRPC_ADDR", "127.0.0.1:0".into()),
        ("DOCUMENTS_GRPC_ADDR", "127.0.0.1:0".into()),
        ("SEARCH_GRPC_ADDR", "127.0.0.1:0".into()),
        ("INFERENCE_GRPC_ADDR", "127.0.0.1:0".into()),
        ("RATE_LIMIT_RPS", "0".into()),
        ("RUST_LOG", "warn".into()),
        (
            "EMBEDDING_MODEL_PATH",
            std::env::var("EMBEDDING_MODEL_PATH")
                .unwrap_or_else(|_| format!("{home}/.cache/pai/models/all-minilm-l6-v2")),
        ),
        ("UPLOAD_PATH", data.join("uploads").display().to_string()),
        (
            "VECTOR_DB_PATH",
            data.join("vector_db").display().to_string(),
        ),
    ]);
    // The extractor is the `pai` binary beside this example's folder (this
    // program has no `extract` subcommand).
    let pai = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("pai"))
        .filter(|path| path.exists())
        .context("build the pai binary first: cargo build --release -p pai")?;
    let env = env.with("PAI_EXTRACT_PROGRAM", pai.display().to_string());
    pai_common::telemetry::init(&env);
    stack::migrate(&env, &Service::ALL).await?;
    let running = Stack::start(&env, &Service::ALL).await?;
    let addr = running.gateway_addr.context("no gateway")?;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    for _ in 0..600 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tokens: Value = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "bench@example.com", "username": "bench", "password": "plum-orchard-lantern-42"}))
        .send()
        .await?
        .json()
        .await?;
    let client = Client {
        http,
        base,
        token: tokens["access_token"]
            .as_str()
            .context("no token")?
            .to_owned(),
    };

    // 1. Ingest the corpus.
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join("dev"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let started = Instant::now();
    let mut ids = Vec::new();
    for file in &files {
        ids.push(client.upload(file).await?);
    }
    let documents = client.wait_all(&ids).await?;
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
    let facts: Vec<Fact> = facts()?
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
    let idle = latency(&client, &queries, LATENCY_SECONDS).await?;
    println!(
        "search hybrid k=5, {CLIENTS} clients, idle: {} queries, p50 {:.2} ms, p99 {:.2} ms",
        idle.len(),
        percentile(&idle, 0.5),
        percentile(&idle, 0.99)
    );
    let long = corpus_dir().join("dev/long_geotopo_skript_de_117p.pdf");
    let mut bulk = Vec::new();
    for _ in 0..3 {
        bulk.push(client.upload(&long).await?);
    }
    let busy = latency(&client, &queries, LATENCY_SECONDS).await?;
    println!(
        "search hybrid k=5, {CLIENTS} clients, during a bulk ingest: {} queries, p50 {:.2} ms, p99 {:.2} ms (p99 ratio to idle {:.2}, target < 2)",
        busy.len(),
        percentile(&busy, 0.5),
        percentile(&busy, 0.99),
        percentile(&busy, 0.99) / percentile(&idle, 0.99).max(0.001)
    );
    client.wait_all(&bulk).await?;

    running.stop().await?;
    let _ = std::fs::remove_dir_all(&data);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS pai_bench_{id} WITH (FORCE)"
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}
