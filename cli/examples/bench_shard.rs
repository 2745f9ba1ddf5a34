//! `make bench-shard`: search sharded by user, in one process.
//!
//! 1. Inserts `USERS` users × `CHUNKS` chunks (100,000 by default) straight
//!    into `search.chunks`: text drawn from the e-mail corpus's prose, unit
//!    vectors drawn at random (the shards' comparison needs the same data
//!    for each count, not real embeddings; embedding 100,000 chunks would
//!    take most of the run).
//! 2. For one, two and three shards: starts the stack with
//!    `SEARCH_SHARDS=n` on fresh index folders (each shard builds its
//!    users' indexes from the table before it reports ready) and runs
//!    hybrid k=5 searches through the gateway from 16 clients, each
//!    query as a random user, for 10 s. Prints queries/s, p50 and p99 and
//!    the ratio to one shard. On two cores every shard shares the same
//!    cores: the ratio shows what routing costs, not what more machines
//!    would gain.
//! 3. Times `Rebuild` of the one shard that holds all the chunks: the time
//!    to rebuild a shard of that size from PostgreSQL.
//!
//! ```text
//! make bench-shard     # or: cargo run --release -p pai --example bench_shard [USERS] [CHUNKS]
//! ```

mod common;

use std::time::{Duration, Instant};

use anyhow::Context;
use common::{Bench, Client, latency, percentile, prose_words, token};
use pai_common::config::JwtSettings;
use pai_common::identity::{JwtKeys, ServiceCredential};
use pai_proto::v1::RebuildRequest;
use pai_proto::v1::search_internal_client::SearchInternalClient;
use pai_search::repo::{self, NewChunk, Source};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use uuid::Uuid;

const SECONDS: u64 = 10;
const CHUNKS_PER_SOURCE: usize = 20;
const WORDS_PER_CHUNK: usize = 60;
const DIMENSIONS: usize = 384;

fn unit_vector(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIMENSIONS).map(|_| rng.r#gen::<f32>() - 0.5).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.into_iter().map(|x| x / norm).collect()
}

async fn insert_user(
    conn: &mut sqlx::PgConnection,
    rng: &mut StdRng,
    words: &[String],
    user: Uuid,
    chunks: usize,
) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    for (number, start) in (0..chunks).step_by(CHUNKS_PER_SOURCE).enumerate() {
        let source = Source {
            user_id: user,
            kind: "document".into(),
            id: Uuid::new_v4(),
            title: format!("bench document {number}.pdf"),
            category: "generic".into(),
        };
        let batch: Vec<NewChunk> = (start..(start + CHUNKS_PER_SOURCE).min(chunks))
            .enumerate()
            .map(|(ordinal, _)| {
                let text = words
                    .choose_multiple(rng, WORDS_PER_CHUNK)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                NewChunk {
                    ordinal: i32::try_from(ordinal).unwrap_or(i32::MAX),
                    page: 1,
                    start: 0,
                    end: i32::try_from(text.len()).unwrap_or(i32::MAX),
                    text,
                    embedding: unit_vector(rng),
                }
            })
            .collect();
        repo::replace_source(&mut tx, &source, &batch).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let users: usize = args.first().map_or(Ok(1_000), |n| n.parse())?;
    let chunks: usize = args.get(1).map_or(Ok(100_000), |n| n.parse())?;
    let per_user = chunks.div_ceil(users.max(1));
    let mut bench = Bench::start().await?;

    // 1. The data, straight into the source of truth.
    let started = Instant::now();
    let words = prose_words()?;
    let database_url = bench.env.required("DATABASE_URL")?;
    let mut conn = sqlx::PgConnection::connect(&database_url).await?;
    let mut rng = StdRng::seed_from_u64(11);
    let ids: Vec<Uuid> = (0..users).map(|_| Uuid::new_v4()).collect();
    for &user in &ids {
        insert_user(&mut conn, &mut rng, &words, user, per_user).await?;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM search.chunks")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "data: {users} users × {per_user} chunks = {total} chunks, inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let keys = JwtKeys::new(&JwtSettings::from_env(&bench.env)?);
    let queries: Vec<String> = (0..200)
        .map(|_| {
            words
                .choose_multiple(&mut rng, 4)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();

    // 2. One, two and three shards on the same rows.
    let vector_db = bench.vector_db();
    let mut one = None;
    for shards in 1..=3u32 {
        bench.env = bench
            .env
            .clone()
            .with("SEARCH_SHARDS", shards.to_string())
            .with(
                "VECTOR_DB_PATH",
                vector_db
                    .join(format!("{shards}-shards"))
                    .display()
                    .to_string(),
            );
        let built = bench.restart().await?;
        let clients: Vec<Client> = ids
            .iter()
            .map(|&user| bench.client(&token(&keys, user)))
            .collect();
        for client in clients.iter().take(common::CLIENTS) {
            client.search(&queries[0], "hybrid").await?;
        }
        let samples = latency(&clients, &queries, SECONDS).await?;
        let rate = samples.len() as f64 / SECONDS as f64;
        let base = *one.get_or_insert(rate);
        println!(
            "{shards} shard(s): built in {:.1} s; 16 clients: {rate:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms; ratio to one shard {:.3}",
            built.as_secs_f64(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            rate / base
        );
    }

    // 3. Rebuilding one shard of every chunk, from PostgreSQL.
    bench.env = bench.env.clone().with("SEARCH_SHARDS", "1").with(
        "VECTOR_DB_PATH",
        vector_db.join("1-shards").display().to_string(),
    );
    bench.restart().await?;
    let addr = bench
        .stack
        .as_ref()
        .and_then(|stack| stack.search_addr)
        .context("no search shard")?;
    let mut client = SearchInternalClient::with_interceptor(
        pai_common::grpc::channel(&format!("http://{addr}"))?,
        ServiceCredential::new(std::sync::Arc::new(keys), "bench"),
    );
    let started = Instant::now();
    let rebuilt = client.rebuild(RebuildRequest {}).await?.into_inner().chunks;
    let took = started.elapsed();
    println!(
        "rebuild: one shard of {rebuilt} chunks in {:.1} s = {:.0} chunks/s",
        took.as_secs_f64(),
        rebuilt as f64 / took.as_secs_f64().max(f64::EPSILON)
    );
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    bench.finish().await
}
