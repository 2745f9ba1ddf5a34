//! Embedding throughput: the gRPC `Embed` path against the same model called
//! directly in process, on real text (the email corpus cut into chunks).
//!
//! ```text
//! cargo run --release -p pai-inference --example embed_bench -- [CORPUS_DIR] [MAX_CHUNKS]
//! RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 \
//!   cargo run --release -p pai-inference --example embed_bench -- engines [CORPUS_DIR] [MAX_CHUNKS]
//! ```
//!
//! Reads the model from `EMBEDDING_MODEL_PATH` (default: where `make models`
//! installs it), `EMBEDDING_BULK_BATCH` like the service, and prints tokens/s
//! for both paths, their ratio, and the lowest cosine between a gRPC vector
//! and the same text embedded alone (unpadded f32 reference). `engines`
//! instead compares every engine (int8, candle's Q8_0, candle's f32), each
//! behind a service with one forward pass per core: bulk tokens/s and one
//! query's latency, as ratios to the int8 encoder's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use pai_common::Env;
use pai_common::grpc::LocalServers;
use pai_common::grpc::{bind, channel};
use pai_common::identity::{JwtKeys, ServiceCredential};
use pai_inference::{Embedder, InferenceSettings, MAX_TEXTS_PER_REQUEST, Precision, serve};
use pai_proto::v1::EmbedRequest;
use pai_proto::v1::embed_request::Priority;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use tokio_util::sync::CancellationToken;

/// About 150–250 tokens: the size of a retrieval chunk.
const CHUNK_CHARS: usize = 900;
const SECRET: &str = "bench-key-7Qm2Xc9TzL4vRw8NpK3sHd6YfB1gJ5aE";

// As in the `pai` binary: glibc's allocator maps and unmaps every large
// tensor, and the page faults cost ~20% of the time (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let engines_only = args.first().is_some_and(|a| a == "engines");
    if engines_only {
        args.remove(0);
    }
    let corpus = args.first().map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/email/dev"),
        PathBuf::from,
    );
    let max_chunks: usize = args.get(1).map_or(Ok(1024), |n| n.parse())?;
    let home = std::env::var("HOME").unwrap_or_default();
    let model = std::env::var("EMBEDDING_MODEL_PATH")
        .unwrap_or_else(|_| format!("{home}/.cache/pai/models/all-minilm-l6-v2"));

    let mut chunks = corpus_chunks(&corpus)?;
    chunks.truncate(max_chunks);
    anyhow::ensure!(
        !chunks.is_empty(),
        "no text found under {}",
        corpus.display()
    );
    let requests: Vec<Vec<String>> = chunks
        .chunks(MAX_TEXTS_PER_REQUEST)
        .map(<[String]>::to_vec)
        .collect();

    if engines_only {
        let counter = Embedder::load(Path::new(&model))?;
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let tokens = counter.count_tokens(&refs)?;
        println!("corpus: {} chunks, {tokens} tokens", chunks.len());
        return compare_engines(&model, &requests, tokens).await;
    }
    let embedder = Arc::new(Embedder::load(Path::new(&model))?);
    let reference = Embedder::load_with(Path::new(&model), Precision::F32)?;
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let tokens = embedder.count_tokens(&refs)?;
    println!(
        "corpus: {} chunks, {tokens} tokens ({:.0} per chunk) from {}",
        chunks.len(),
        tokens as f64 / chunks.len() as f64,
        corpus.display()
    );
    embedder.embed(&refs[..refs.len().min(32)])?; // warm up

    reference.embed(&refs[..refs.len().min(32)])?;

    let rate = |model: &Embedder| -> anyhow::Result<f64> {
        let started = Instant::now();
        for request in &requests {
            let texts: Vec<&str> = request.iter().map(String::as_str).collect();
            model.embed(&texts)?;
        }
        Ok(tokens as f64 / started.elapsed().as_secs_f64())
    };
    let f32_rate = rate(&reference)?;
    println!("direct f32 (candle BERT, in process): {f32_rate:.0} tokens/s");
    let direct = rate(&embedder)?;
    println!(
        "direct (in process, the service's default model, one call at a time): {direct:.0} tokens/s"
    );

    // Its own LocalServers: the client goes over loopback TCP.
    let service = Service::start(&model, None).await?;
    let started = Instant::now();
    let vectors = service.embed_all(&requests).await?;
    let grpc = tokens as f64 / started.elapsed().as_secs_f64();
    println!("gRPC Embed (bulk):   {grpc:.0} tokens/s");
    println!("ratio gRPC / direct: {:.2} (target >= 0.9)", grpc / direct);
    println!("ratio gRPC / direct f32: {:.2}", grpc / f32_rate);

    let mut lowest = f32::MAX;
    for (text, vector) in chunks.iter().zip(&vectors).step_by(8) {
        let alone = reference.embed(&[text.as_str()])?;
        lowest = lowest.min(cosine(&alone[0], vector));
    }
    println!(
        "lowest cosine, gRPC vs the f32 model on the text alone: {lowest:.6} (target >= 0.99)"
    );

    service.stop().await
}

/// An inference service on loopback and a client of it.
struct Service {
    client: InferenceInternalClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            ServiceCredential,
        >,
    >,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    /// Starts the service on `model` at `precision` (the settings' default
    /// when `None`) and warms it up with one call.
    async fn start(model: &str, precision: Option<Precision>) -> anyhow::Result<Self> {
        let env = Env::from_process()
            .with("EMBEDDING_MODEL_PATH", model)
            .with("JWT_SECRET_KEY", SECRET);
        let mut settings = InferenceSettings::from_env(&env)?;
        if let Some(precision) = precision {
            settings.precision = precision;
        }
        let keys = Arc::new(JwtKeys::new(&settings.jwt));
        let (listener, addr) = bind("127.0.0.1:0").await?;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            settings,
            None,
            listener,
            shutdown.clone(),
            LocalServers::default(),
        ));
        let client = InferenceInternalClient::with_interceptor(
            channel(&format!("http://{addr}"))?,
            ServiceCredential::new(keys, "bench"),
        )
        .max_decoding_message_size(16 * 1024 * 1024);
        client
            .clone()
            .embed(EmbedRequest {
                texts: vec![QUERY.to_owned()],
                priority: Priority::Bulk as i32,
            })
            .await
            .context("warm-up call")?;
        Ok(Self {
            client,
            shutdown,
            server,
        })
    }

    /// Embeds every request in bulk, two callers at a time so the workers
    /// stay busy while the other's answer travels.
    async fn embed_all(&self, requests: &[Vec<String>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::new();
        for pair in requests.chunks(2) {
            let calls = pair.iter().map(|texts| {
                let mut client = self.client.clone();
                async move { client.embed(bulk(texts)).await }
            });
            for response in futures::future::try_join_all(calls).await? {
                vectors.extend(
                    response
                        .into_inner()
                        .embeddings
                        .into_iter()
                        .map(|e| e.values),
                );
            }
        }
        Ok(vectors)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await?
    }
}

/// A query of about 12 tokens, as search embeds it.
const QUERY: &str = "What is the total amount due on the AWS invoice?";
/// Queries timed one at a time per engine.
const QUERY_SAMPLES: usize = 200;

/// One engine's figures: bulk tokens/s over gRPC and one query's latency.
struct EngineRun {
    precision: Precision,
    tokens_per_second: f64,
    query_p50_ms: f64,
    query_p99_ms: f64,
}

/// Every engine pai ships, each behind its own service with one
/// single-threaded forward pass per core (run with `RAYON_NUM_THREADS=1
/// CANDLE_NUM_THREADS=1`, as `make bench-ingest` does, so candle does not
/// spread a pass over the cores): bulk tokens/s through `Embed` with two
/// callers, and the latency of one query at a time (interactive), as ratios
/// to the int8 encoder's in the same run.
async fn compare_engines(
    model: &str,
    requests: &[Vec<String>],
    tokens: usize,
) -> anyhow::Result<()> {
    let threads = candle_core::utils::get_num_threads();
    println!("\nengines, one forward pass per core, candle on {threads} thread(s) a pass:");
    if threads != 1 {
        println!(
            "  (candle spreads each pass over {threads} threads: run with RAYON_NUM_THREADS=1 \
             CANDLE_NUM_THREADS=1 to compare single-threaded passes)"
        );
    }
    let mut runs = Vec::new();
    for precision in [Precision::Int8, Precision::Q8, Precision::F32] {
        runs.push(run_engine(model, precision, requests, tokens).await?);
    }
    let int8 = &runs[0];
    println!("  engine  tokens/s  ratio   query p50  p99 (ms)  ratio p50");
    for run in &runs {
        println!(
            "  {:<6} {:>9.0}  {:>5.2}   {:>9.2} {:>9.2}  {:>9.2}",
            format!("{:?}", run.precision).to_lowercase(),
            run.tokens_per_second,
            run.tokens_per_second / int8.tokens_per_second,
            run.query_p50_ms,
            run.query_p99_ms,
            run.query_p50_ms / int8.query_p50_ms,
        );
    }
    Ok(())
}

async fn run_engine(
    model: &str,
    precision: Precision,
    requests: &[Vec<String>],
    tokens: usize,
) -> anyhow::Result<EngineRun> {
    let service = Service::start(model, Some(precision)).await?;
    let started = Instant::now();
    service.embed_all(requests).await?;
    let tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64();

    let mut latencies = Vec::with_capacity(QUERY_SAMPLES);
    for _ in 0..QUERY_SAMPLES {
        let request = EmbedRequest {
            texts: vec![QUERY.to_owned()],
            priority: Priority::Interactive as i32,
        };
        let started = Instant::now();
        service.client.clone().embed(request).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    service.stop().await?;
    Ok(EngineRun {
        precision,
        tokens_per_second,
        query_p50_ms: at(0.5),
        query_p99_ms: at(0.99),
    })
}

fn bulk(texts: &[String]) -> EmbedRequest {
    EmbedRequest {
        texts: texts.to_vec(),
        priority: Priority::Bulk as i32,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Returns the readable prose of every `.eml` under `dir`, cut into chunks:
/// the body after the headers, without MIME boundaries, header-like lines,
/// base64 runs or HTML tags. Crude, but it is real text.
fn corpus_chunks(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .collect();
    paths.sort();
    let mut chunks = Vec::new();
    for path in paths {
        let raw = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        let body = raw.split_once("\n\n").map_or("", |(_, body)| body);
        let mut text = String::new();
        for line in body.lines() {
            let line = line.trim();
            let looks_like_data = !line.contains(' ') && line.len() > 40;
            let looks_like_header = line.split_once(':').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if line.is_empty() || line.starts_with("--") || looks_like_data || looks_like_header {
                continue;
            }
            text.push_str(&strip_tags(line));
            text.push(' ');
        }
        chunks.extend(split_words(&text, CHUNK_CHARS));
    }
    Ok(chunks)
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_words(text: &str, max_chars: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if current.len() + word.len() + 1 > max_chars && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if current.split_whitespace().count() >= 5 {
        chunks.push(current);
    }
    chunks
}
