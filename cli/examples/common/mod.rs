//! What the whole-stack benchmarks share: a throw-away stack on its own
//! database, exchange and data folder, an HTTP client for it, the corpus
//! facts and latency sampling.

#![allow(dead_code, reason = "each benchmark uses a different part")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pai::stack::{self, Service, Stack};
use pai_common::Env;
use serde_json::{Value, json};

// Every benchmark runs on the allocator of the `pai` binary
// (cli/src/main.rs), so that it measures the stack as it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent search clients, as the issue's benchmark asks.
pub const CLIENTS: usize = 16;

pub struct Fact {
    pub file: String,
    pub question: String,
    pub answer: String,
}

/// Seconds summed per `stage` label of the histogram `metric` so far, from
/// the gateway's `/metrics` (the services record into the one process-wide
/// recorder when they run together).
pub async fn stage_seconds(
    bench: &Bench,
    metric: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
    let text = bench
        .http
        .get(format!("{}/metrics", bench.base))
        .send()
        .await?
        .text()
        .await?;
    let prefix = format!("{metric}_sum{{stage=\"");
    let mut sums = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        if let Some((stage, value)) = rest.split_once("\"} ") {
            sums.insert(stage.to_owned(), value.trim().parse().unwrap_or(0.0));
        }
    }
    Ok(sums)
}

/// Milliseconds per query spent in each stage between two
/// [`stage_seconds`] readings: "bm25 0.66, embed 4.11, …".
pub fn stage_means(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    queries: usize,
) -> String {
    let stages: Vec<String> = after
        .iter()
        .map(|(stage, sum)| {
            let spent = sum - before.get(stage).copied().unwrap_or(0.0);
            format!("{stage} {:.2}", 1000.0 * spent / queries.max(1) as f64)
        })
        .collect();
    stages.join(", ")
}

/// Waits until this process (the whole stack runs in it) has used less
/// than a fifth of one core for two seconds in a row, at most `limit`:
/// after a large rebuild, tantivy merges its segments in the background
/// (niced) for a while, and those merges would otherwise be measured as
/// search overhead. Returns how long it waited.
pub async fn settle(limit: Duration) -> anyhow::Result<Duration> {
    fn cpu_ticks() -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // Fields after the command name (which may hold spaces), from 3 on.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field =
            |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
        Ok(field(14) + field(15))
    }
    let started = Instant::now();
    let mut quiet = 0;
    let mut last = cpu_ticks()?;
    while quiet < 2 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_ticks()?;
        // Clock ticks are 1/100 s: under 20 ticks a second is under 0.2 cores.
        quiet = if now - last < 20 { quiet + 1 } else { 0 };
        last = now;
    }
    Ok(started.elapsed())
}

/// The test corpus `testdata/{kind}` of the repository.
pub fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(kind)
}

/// The facts of a corpus manifest (`pdf` or `email`), files without `dev/`.
pub fn facts(kind: &str) -> anyhow::Result<Vec<Fact>> {
    let text = std::fs::read_to_string(corpus_dir(kind).join("facts.tsv"))?;
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

pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The `p` quantile of sorted samples, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// An access token of `user_id`, signed with the stack's key (users
/// inserted straight into `search.chunks` have no account to sign in to).
pub fn token(keys: &pai_common::JwtKeys, user_id: uuid::Uuid) -> String {
    keys.issue_access(&pai_common::UserContext {
        user_id,
        session_id: uuid::Uuid::new_v4(),
        is_admin: false,
    })
}

/// A stack on a fresh database `pai_bench_{id}`, dropped by [`Bench::finish`].
pub struct Bench {
    pub env: Env,
    pub stack: Option<Stack>,
    pub base: String,
    pub http: reqwest::Client,
    admin_url: String,
    id: String,
    data: PathBuf,
}

impl Bench {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// [`Bench::start`] with `extra` settings on top of the bench's own.
    pub async fn start_with(extra: &[(&str, String)]) -> anyhow::Result<Self> {
        let admin_url = std::env::var("PAI_TEST_DATABASE_URL").unwrap_or_else(|_| {
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into()
        });
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data = std::env::temp_dir().join(format!("pai-bench-{id}"));
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        // The extractor is the `pai` binary beside this example's folder
        // (an example has no `extract` subcommand).
        let pai = std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("pai"))
            .filter(|path| path.exists())
            .context("build the pai binary first: cargo build --release -p pai")?;
        let mut env = Env::from_pairs([
            ("DATABASE_URL", format!("{root}/pai_bench_{id}?{query}")),
            ("AMQP_EVENTS_EXCHANGE", format!("pai.bench.{id}")),
            ("JWT_SECRET_KEY", format!("bench-secret-{id}")),
            ("HOST", "127.0.0.1".into()),
            ("PORT", "0".into()),
            ("AUTH_GRPC_ADDR", "127.0.0.1:0".into()),
            ("DOCUMENTS_GRPC_ADDR", "127.0.0.1:0".into()),
            ("SEARCH_GRPC_ADDR", "127.0.0.1:0".into()),
            ("INFERENCE_GRPC_ADDR", "127.0.0.1:0".into()),
            ("MAIL_SYNC_GRPC_ADDR", "127.0.0.1:0".into()),
            ("RATE_LIMIT_RPS", "0".into()),
            // A 500-document ingest outlasts the default 15-minute token.
            ("JWT_EXPIRATION_MINUTES", "240".into()),
            ("RUST_LOG", "error,tower_http=off".into()),
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
            ("PAI_EXTRACT_PROGRAM", pai.display().to_string()),
            (
                "LLM_MODEL_PATH",
                std::env::var("LLM_MODEL_PATH").unwrap_or_else(|_| {
                    format!("{home}/.cache/pai/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
                }),
            ),
        ]);
        // The answering settings a run may vary pass through.
        for name in [
            "ASK_THREADS",
            "ASK_PARALLEL",
            "ASK_CONTEXT_TOKENS",
            "ASK_MAX_TOKENS",
            "ASK_QUEUE_MAX",
            "ASK_DEADLINE_SECS",
        ] {
            if let Ok(value) = std::env::var(name) {
                env = env.with(name, value);
            }
        }
        for (name, value) in extra {
            env = env.with(name, value.clone());
        }
        pai_common::telemetry::init(&env);
        stack::migrate(&env, &Service::ALL).await?;
        let mut bench = Self {
            env,
            stack: None,
            base: String::new(),
            http: reqwest::Client::new(),
            admin_url,
            id,
            data,
        };
        bench.restart().await?;
        Ok(bench)
    }

    /// The folder of the search indexes.
    pub fn vector_db(&self) -> PathBuf {
        self.data.join("vector_db")
    }

    /// (Re)starts every service and waits until the gateway is ready.
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        if let Some(running) = self.stack.take() {
            running.stop().await?;
        }
        let started = Instant::now();
        let running = Stack::start(&self.env, &Service::ALL).await?;
        self.base = format!("http://{}", running.gateway_addr.context("no gateway")?);
        self.stack = Some(running);
        for _ in 0..36_000 {
            if self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the stack never became ready")
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(running) = self.stack.take() {
            running.stop().await?;
        }
        Ok(())
    }

    /// Registers a user and returns a client acting as them.
    pub async fn user(&self, name: &str) -> anyhow::Result<Client> {
        let tokens: Value = self
            .http
            .post(format!("{}/api/auth/register", self.base))
            .json(&json!({
                "email": format!("{name}@example.com"),
                "username": name,
                "password": "plum-orchard-lantern-42",
            }))
            .send()
            .await?
            .json()
            .await?;
        Ok(self.client(
            tokens["access_token"]
                .as_str()
                .with_context(|| format!("register answered {tokens}"))?,
        ))
    }

    pub fn client(&self, token: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.to_owned(),
        }
    }

    /// Stops the stack; drops the database, the exchange's data folder.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let _ = std::fs::remove_dir_all(&self.data);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin_url).await?;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS pai_bench_{} WITH (FORCE)",
            self.id
        ))
        .execute(&mut conn)
        .await?;
        self.delete_queues().await;
        Ok(())
    }

    /// Deletes the bench's exchange and its queues (quorum queues left
    /// behind by run after run weigh on RabbitMQ).
    async fn delete_queues(&self) {
        let exchange = format!("pai.bench.{}", self.id);
        let Ok(settings) = pai_common::config::AmqpSettings::from_env(&self.env) else {
            return;
        };
        let Ok(connection) = pai_common::amqp::connect(&settings.url).await else {
            return;
        };
        let Ok(channel) = connection.create_channel().await else {
            return;
        };
        let mut names = vec![pai_common::amqp::conversion_marker_queue(&exchange)];
        for subscription in pai_common::amqp::SUBSCRIPTIONS {
            let queue = subscription.queue(&exchange);
            let (retry, dead) = pai_common::amqp::side_queues(&queue);
            names.extend([queue, retry, dead]);
        }
        for name in names {
            let _ = channel
                .queue_delete(&name, lapin::options::QueueDeleteOptions::default())
                .await;
        }
        let _ = channel
            .exchange_delete(&exchange, lapin::options::ExchangeDeleteOptions::default())
            .await;
        let _ = connection.close(200, "bench done").await;
    }
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Client {
    pub async fn upload(&self, path: &Path) -> anyhow::Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("doc.pdf");
        self.upload_bytes(name, std::fs::read(path)?).await
    }

    pub async fn upload_bytes(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<String> {
        let part = reqwest::multipart::Part::bytes(bytes)
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
            .with_context(|| format!("upload answered {body}"))?
            .to_owned())
    }

    pub async fn document(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/api/documents/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET /api/documents/{id}: {status} {body}");
        }
        Ok(body)
    }

    pub async fn search(&self, query: &str, mode: &str) -> anyhow::Result<Value> {
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

    /// Uploads every PDF of the dev corpus and waits for all of them;
    /// returns the files and their document rows, in file name order.
    pub async fn ingest_corpus(&self) -> anyhow::Result<(Vec<PathBuf>, Vec<Value>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir("pdf").join("dev"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let mut ids = Vec::new();
        for file in &files {
            ids.push(self.upload(file).await?);
        }
        let documents = self.wait_all(&ids).await?;
        Ok((files, documents))
    }

    /// Waits until every document is indexed or failed; returns their rows.
    pub async fn wait_all(&self, ids: &[String]) -> anyhow::Result<Vec<Value>> {
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

/// Whether the slowest 2 % of `samples` (latency, query index; sorted) are
/// a few slow questions or spread over many: how often the question seen
/// most there appears, against how often each question ran.
fn tail_spread(samples: &[(Duration, usize)], queries: usize) -> String {
    let slow = &samples[samples.len() * 98 / 100..];
    let mut counts = vec![0usize; queries];
    for (_, query) in slow {
        counts[*query] += 1;
    }
    let distinct = counts.iter().filter(|&&n| n > 0).count();
    let most = counts.iter().max().copied().unwrap_or(0);
    format!(
        "slowest 2 %: {} queries of {distinct} questions, none more than {most} times (each question ran ~{} times)",
        slow.len(),
        samples.len() / queries.max(1)
    )
}

/// Runs hybrid k=5 searches from [`CLIENTS`] concurrent clients for
/// `seconds`; client `c` of query `i` is `clients[(i * 7 + c) % len]`.
/// Returns the sorted latencies.
pub async fn latency(
    clients: &[Client],
    queries: &[String],
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..CLIENTS).map(|worker| async move {
        let mut samples = Vec::new();
        let mut i = worker;
        while Instant::now() < deadline {
            let client = &clients[(i * 7 + worker) % clients.len()];
            let started = Instant::now();
            let body = client.search(&queries[i % queries.len()], "hybrid").await?;
            if !body["hits"].is_array() {
                bail!("search failed: {body}");
            }
            let inside =
                Duration::from_secs_f64(body["took_ms"].as_f64().unwrap_or_default() / 1e3);
            samples.push((started.elapsed(), i % queries.len(), inside));
            i += CLIENTS;
        }
        Ok(samples)
    });
    let mut all = Vec::new();
    for samples in futures::future::join_all(workers).await {
        all.extend(samples?);
    }
    all.sort();
    let mut inside: Vec<Duration> = all.iter().map(|x| x.2).collect();
    inside.sort();
    let spread: Vec<(Duration, usize)> = all.iter().map(|x| (x.0, x.1)).collect();
    println!("  {}", tail_spread(&spread, queries.len()));
    println!(
        "  inside the search service: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&inside, 0.5),
        percentile(&inside, 0.99)
    );
    Ok(all.into_iter().map(|x| x.0).collect())
}

pub fn report(label: &str, samples: &[Duration]) -> String {
    format!(
        "{label}: {} queries, p50 {:.2} ms, p99 {:.2} ms",
        samples.len(),
        percentile(samples, 0.5),
        percentile(samples, 0.99)
    )
}

/// The readable ASCII words of the email corpus bodies, in file order: real
/// prose for generated documents (headers, MIME parts, tags and long tokens
/// left out).
pub fn prose_words() -> anyhow::Result<Vec<String>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir("email").join("dev"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    paths.sort();
    let mut words = Vec::new();
    for path in paths {
        let raw = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        let body = raw.split_once("\n\n").map_or("", |(_, body)| body);
        for line in body.lines() {
            let line = line.trim();
            if !line.contains(' ') || line.starts_with("--") || line.contains(['<', '>', '=']) {
                continue;
            }
            words.extend(
                line.split_whitespace()
                    .filter(|w| w.len() < 25 && w.chars().all(|c| c.is_ascii_graphic()))
                    .map(str::to_owned),
            );
        }
    }
    Ok(words)
}
