//! `make bench-search`: search latency on large per-user datasets, through
//! the whole stack and against tantivy + usearch called directly.
//!
//! 1. Seeds real text and real embeddings: the PDF corpus is ingested through
//!    the stack (extract → chunk → all-MiniLM-L6-v2).
//! 2. Builds two datasets straight into `search.chunks`: (a) 1,000 users ×
//!    200 chunks and (b) one user with 100,000 chunks. Each chunk joins the
//!    first half of one real chunk to the second half of another; its vector
//!    is the normalised sum of the two real embeddings (the model mean-pools
//!    token states, so this stays on the manifold of real text, unlike random
//!    vectors). Embedding 300k chunks here would take hours.
//! 3. Restarts the stack, which rebuilds the indexes from `search.chunks`.
//! 4. Measures hybrid k=5 search (query embedding included) at 16 concurrent
//!    clients for (a) and (b), one client at a time, and for (a) again while
//!    a bulk ingest runs; then the same queries with the model, tantivy and
//!    usearch called directly in this process, for the overhead. Before each
//!    16-client phase it prints a gauge of the machine's speed: the model
//!    alone, called directly for two seconds from as many threads as the
//!    service runs forward passes at once (one per core for the int8 model).
//! 5. Restarts the stack (the indexes caught up, so none is opened) and
//!    times, one client at a time, each of 200 users' first search (their
//!    indexes closed: cold) and their second (open: hot).
//!
//! ```text
//! make bench-search      # or: cargo run --release -p pai --example bench_search [USERS] [BIG]
//! ```

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{
    Bench, CLIENTS, Client, corpus_dir, facts, latency, percentile, report, settle, stage_means,
    stage_seconds, token,
};
use pai_common::config::JwtSettings;
use pai_common::identity::JwtKeys;
use pai_inference::Embedder;
use pai_search::repo::{self, NewChunk, Source};
use pai_search::service::text_index_dir;
use pai_search::text_index::{Filters, TextIndex};
use pai_search::vector_index::VectorIndexes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use uuid::Uuid;

const LATENCY_SECONDS: u64 = 10;
const GAUGE_SECONDS: u64 = 2;
const CHUNKS_PER_SMALL_USER: usize = 200;
const CHUNKS_PER_SOURCE: usize = 20;
/// Candidates per list, as the service asks for k = 5.
const CANDIDATES: usize = 20;
/// Users whose first (cold) and second (hot) search are timed.
const COLD_USERS: usize = 200;

struct Seed {
    text: Vec<String>,
    embedding: Vec<f32>,
}

/// A chunk made of two real ones: half of each text, the sum of both vectors.
fn blend(rng: &mut StdRng, seeds: &[Seed]) -> (String, Vec<f32>) {
    let a = &seeds[rng.gen_range(0..seeds.len())];
    let b = &seeds[rng.gen_range(0..seeds.len())];
    let mut words: Vec<&str> = a.text[..a.text.len() / 2]
        .iter()
        .map(String::as_str)
        .collect();
    words.extend(b.text[b.text.len() / 2..].iter().map(String::as_str));
    let mut vector: Vec<f32> = a
        .embedding
        .iter()
        .zip(&b.embedding)
        .map(|(x, y)| x + y)
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    vector.iter_mut().for_each(|x| *x /= norm);
    (words.join(" "), vector)
}

/// Inserts `sources × per_source` blended chunks for `user`.
async fn insert_user(
    conn: &mut sqlx::PgConnection,
    rng: &mut StdRng,
    seeds: &[Seed],
    user: Uuid,
    chunks: usize,
) -> anyhow::Result<()> {
    let per_source = if chunks > 10_000 {
        100
    } else {
        CHUNKS_PER_SOURCE
    };
    let mut tx = conn.begin().await?;
    for (number, start) in (0..chunks).step_by(per_source).enumerate() {
        let source = Source {
            user_id: user,
            kind: "document".into(),
            id: Uuid::new_v4(),
            title: format!("bench document {number}.pdf"),
            category: ["financial", "long_form", "generic"][number % 3].into(),
        };
        let batch: Vec<NewChunk> = (start..(start + per_source).min(chunks))
            .enumerate()
            .map(|(ordinal, _)| {
                let (text, embedding) = blend(rng, seeds);
                NewChunk {
                    ordinal: ordinal as i32,
                    page: 1 + ordinal as i32 / 3,
                    start: 0,
                    end: text.len() as i32,
                    text,
                    embedding,
                }
            })
            .collect();
        repo::replace_source(&mut tx, &source, &batch).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Runs `work(thread)` on `threads` OS threads at once and returns each
/// thread's result, or the first error.
fn on_threads<T: Send>(
    threads: usize,
    work: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| scope.spawn(move || work(thread)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            })
            .collect()
    })
}

/// Runs `queries` from `CLIENTS` threads for `seconds` against the indexes
/// directly: embed the query, BM25 top 20, vector top 20.
fn direct(
    embedder: &Embedder,
    text: &TextIndex,
    vectors: &VectorIndexes,
    users: &[Uuid],
    queries: &[String],
    threads: usize,
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_thread = on_threads(threads, |worker| {
        let mut samples = Vec::new();
        let mut i = worker;
        while Instant::now() < deadline {
            let user = users[(i * 7 + worker) % users.len()];
            let query = &queries[i % queries.len()];
            let started = Instant::now();
            let vector = embedder
                .embed(&[query.as_str()])?
                .pop()
                .context("no vector")?;
            let bm25 = text.search(user, query, CANDIDATES, &Filters::default())?;
            let nearest = vectors.search(user, &vector, CANDIDATES)?;
            std::hint::black_box((bm25, nearest));
            samples.push(started.elapsed());
            i += threads;
        }
        Ok(samples)
    })?;
    let mut all: Vec<Duration> = per_thread.into_iter().flatten().collect();
    all.sort();
    Ok(all)
}

/// The machine's speed just before a measurement: the model alone, called
/// directly from `threads` threads for [`GAUGE_SECONDS`], in queries a
/// second. The host's load has moved it by up to 2× between
/// sessions on the same kind of CPU, and the 16-client figures move with
/// it, so each phase prints its own reading beside its figures.
fn gauge(embedder: &Embedder, queries: &[String], threads: usize) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(GAUGE_SECONDS);
    let counts = on_threads(threads, |thread| {
        let mut done = 0;
        while Instant::now() < deadline {
            let query = &queries[(thread + done * threads) % queries.len()];
            embedder.embed(&[query.as_str()])?;
            done += 1;
        }
        Ok(done)
    })?;
    Ok(counts.iter().sum::<usize>() as f64 / GAUGE_SECONDS as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small_users: usize = args.first().map_or(Ok(1_000), |n| n.parse())?;
    let big_chunks: usize = args.get(1).map_or(Ok(100_000), |n| n.parse())?;
    let mut bench = Bench::start().await?;

    // 1. Real text and real embeddings.
    let seed_user = bench.user("seed").await?;
    let started = Instant::now();
    seed_user.ingest_corpus().await?;
    let database_url = bench.env.required("DATABASE_URL")?;
    let mut conn = sqlx::PgConnection::connect(&database_url).await?;
    let rows: Vec<(String, Vec<f32>)> =
        sqlx::query_as("SELECT text, embedding FROM search.chunks ORDER BY id")
            .fetch_all(&mut conn)
            .await?;
    let seeds: Vec<Seed> = rows
        .into_iter()
        .map(|(text, embedding)| Seed {
            text: text.split_whitespace().map(str::to_owned).collect(),
            embedding,
        })
        .filter(|seed| seed.text.len() >= 8)
        .collect();
    println!(
        "seed: {} real chunks embedded through the stack in {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. The datasets, straight into the source of truth.
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let small: Vec<Uuid> = (0..small_users).map(|_| Uuid::new_v4()).collect();
    for &user in &small {
        insert_user(&mut conn, &mut rng, &seeds, user, CHUNKS_PER_SMALL_USER).await?;
    }
    let big = Uuid::new_v4();
    insert_user(&mut conn, &mut rng, &seeds, big, big_chunks).await?;
    repo::bump_generation(&mut conn, pai_common::shards::Shard::ONLY).await?;
    println!(
        "datasets: (a) {small_users} users × {CHUNKS_PER_SMALL_USER} chunks, (b) 1 user × {big_chunks} chunks, inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 3. The search service rebuilds its indexes from search.chunks on start.
    let rebuilt = bench.restart().await?;
    // The gateway listens on a new port after the restart.
    let seed_user = bench.client(&seed_user.token);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM search.chunks")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "rebuild: {total} chunks into tantivy + usearch in {:.1} s",
        rebuilt.as_secs_f64()
    );
    let waited = settle(Duration::from_secs(300)).await?;
    println!(
        "settle: background index merges done after {:.1} s",
        waited.as_secs_f64()
    );

    // 4. Through the stack.
    let keys = JwtKeys::new(&JwtSettings::from_env(&bench.env)?);
    let small_clients: Vec<Client> = small
        .iter()
        .map(|&user| bench.client(&token(&keys, user)))
        .collect();
    let big_client = vec![bench.client(&token(&keys, big))];
    let mut queries: Vec<String> = facts("pdf")?.into_iter().map(|f| f.question).collect();
    queries.extend(facts("email")?.into_iter().map(|f| f.question));
    // The model called directly: the gauge before each phase, then the
    // direct path.
    let embedder = Arc::new(Embedder::load(std::path::Path::new(
        &bench.env.required("EMBEDDING_MODEL_PATH")?,
    ))?);
    // As many threads as the service's batcher runs passes at once.
    let gauge_threads = embedder.parallel_passes();
    let print_gauge = || -> anyhow::Result<()> {
        println!(
            "gauge: the model alone on {gauge_threads} threads, {:.0} queries/s",
            gauge(&embedder, &queries, gauge_threads)?
        );
        Ok(())
    };
    // Warm up every path once.
    for client in small_clients.iter().take(CLIENTS).chain(&big_client) {
        client.search(&queries[0], "hybrid").await?;
    }

    let mut service = Vec::new();
    for (label, clients) in [
        ("(a) 1,000 users", &small_clients),
        ("(b) 100k chunks", &big_client),
    ] {
        print_gauge()?;
        let before = stage_seconds(&bench, "pai_search_stage_seconds").await?;
        let concurrent = latency(clients, &queries, LATENCY_SECONDS).await?;
        println!(
            "{}",
            report(&format!("service {label}, {CLIENTS} clients"), &concurrent)
        );
        let after = stage_seconds(&bench, "pai_search_stage_seconds").await?;
        println!(
            "  mean ms per query inside search: {}",
            stage_means(&before, &after, concurrent.len())
        );
        let before = after;
        let mut one = Vec::new();
        let mut inside = Vec::new();
        for (i, query) in queries.iter().enumerate() {
            let client = &clients[(i * 7) % clients.len()];
            let started = Instant::now();
            let body = client.search(query, "hybrid").await?;
            one.push(started.elapsed());
            let took = body["took_ms"].as_f64().unwrap_or_default();
            inside.push(Duration::from_secs_f64(took / 1000.0));
        }
        one.sort();
        inside.sort();
        println!(
            "{} (inside the search service: p50 {:.2} ms)",
            report(&format!("service {label}, 1 client"), &one),
            percentile(&inside, 0.5)
        );
        let after = stage_seconds(&bench, "pai_search_stage_seconds").await?;
        println!(
            "  mean ms per query inside search: {}",
            stage_means(&before, &after, queries.len())
        );
        service.push((label, concurrent, one));
    }

    print_gauge()?;
    let long = corpus_dir("pdf").join("dev/long_geotopo_skript_de_117p.pdf");
    let mut bulk = Vec::new();
    for _ in 0..3 {
        bulk.push(seed_user.upload(&long).await?);
    }
    let busy = latency(&small_clients, &queries, LATENCY_SECONDS).await?;
    let idle_p99 = percentile(&service[0].1, 0.99);
    println!(
        "{} (p99 {:.2}× idle, target < 2)",
        report(
            &format!("service (a) during a bulk ingest, {CLIENTS} clients"),
            &busy
        ),
        percentile(&busy, 0.99) / idle_p99.max(0.001)
    );
    seed_user.wait_all(&bulk).await?;

    // 5. Cold and hot: no user's index is open after a restart.
    bench.restart().await?;
    let mut cold = Vec::new();
    let mut hot = Vec::new();
    for (i, &user) in small.iter().step_by(5).take(COLD_USERS).enumerate() {
        let client = bench.client(&token(&keys, user));
        // A different query each time.
        for (turn, samples) in [&mut cold, &mut hot].into_iter().enumerate() {
            let started = Instant::now();
            client
                .search(&queries[(i * 7 + turn) % queries.len()], "hybrid")
                .await?;
            samples.push(started.elapsed());
        }
    }
    cold.sort();
    hot.sort();
    println!(
        "{}",
        report(
            "service (a), 1 client, a user's first search (closed indexes)",
            &cold
        )
    );
    println!(
        "{}",
        report("service (a), 1 client, their second (open indexes)", &hot)
    );

    // 6. The same work without the services: model, tantivy, usearch in process.
    bench.stop().await?;
    let dir = bench.vector_db();
    let text = TextIndex::open(&text_index_dir(&dir), small.len() + 1)?;
    let vectors = VectorIndexes::open(&dir.join("vectors"), small.len() + 1)?;
    let mut embed_only = Vec::new();
    for query in &queries {
        let started = Instant::now();
        embedder.embed(&[query.as_str()])?;
        embed_only.push(started.elapsed());
    }
    embed_only.sort();
    println!(
        "{}",
        report("direct: query embedding alone, 1 thread", &embed_only)
    );
    for ((label, concurrent, one), users) in service.iter().zip([small.clone(), vec![big]]) {
        let direct_one = direct(&embedder, &text, &vectors, &users, &queries, 1, 5)?;
        let direct_many = direct(
            &embedder,
            &text,
            &vectors,
            &users,
            &queries,
            CLIENTS,
            LATENCY_SECONDS,
        )?;
        println!(
            "{}",
            report(&format!("direct {label}, 1 thread"), &direct_one)
        );
        println!(
            "{}",
            report(&format!("direct {label}, {CLIENTS} threads"), &direct_many)
        );
        println!(
            "overhead {label}: p50 {:.2} ms at 1 client (target < 2 ms); p99 at {CLIENTS} clients {:.2} ms service vs {:.2} ms direct (target p99 < 25 ms)",
            percentile(one, 0.5) - percentile(&direct_one, 0.5),
            percentile(concurrent, 0.99),
            percentile(&direct_many, 0.99)
        );
    }
    drop(conn);
    bench.finish().await
}
