//! Query-sized embedding latency, f32 against the two 8-bit models (candle's
//! Q8_0 and pai's int8 encoder), plus a long batch's tokens/s and the cosine
//! to f32 on a few texts.
//!
//! ```text
//! cargo run --release -p pai-inference --example query_latency [single [f32|q8|int8]]
//! cargo run --release -p pai-inference --example query_latency batcher [WORKERS]
//! ```
//! `single` loops on one-query calls only (for `perf record`); `batcher`
//! times one query at a time through the service's batcher (2 workers by
//! default).

use pai_inference::{Embedder, Precision};
use std::path::Path;
use std::time::Instant;
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> anyhow::Result<()> {
    let home = std::env::var("HOME")?;
    let dir = format!("{home}/.cache/pai/models/all-minilm-l6-v2");
    let f = Embedder::load_with(Path::new(&dir), Precision::F32)?;
    let q = Embedder::load_with(Path::new(&dir), Precision::Q8)?;
    let i8 = Embedder::load_with(Path::new(&dir), Precision::Int8)?;
    let qs = [
        "What is the total amount due on the AWS invoice?",
        "Which school board meeting date",
        "disability prevalence among adults in 2010",
    ];
    let long: Vec<String> = (0..32).map(|i| format!("{} {}", i, "The quick brown fox jumps over the lazy dog near the river bank while the census counts people with disabilities. ".repeat(8))).collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    if std::env::args().nth(1).as_deref() == Some("single") {
        let e = match std::env::args().nth(2).as_deref() {
            Some("f32") => &f,
            Some("q8") => &q,
            _ => &i8,
        };
        let t = Instant::now();
        for i in 0..4000 {
            let _ = e.embed(&[qs[i % 3]])?;
        }
        println!(
            "single query: {:.2} ms",
            t.elapsed().as_secs_f64() * 1000.0 / 4000.0
        );
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("batcher") {
        // One query at a time through the service's batcher, as the search
        // service asks for a query's vector.
        let workers: usize = std::env::args().nth(2).map_or(Ok(2), |w| w.parse())?;
        let batcher = pai_inference::Batcher::start_with_workers(
            std::sync::Arc::new(i8),
            pai_inference::BatchSizes::default(),
            workers,
        )?;
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async {
            let mut times = Vec::new();
            for i in 0..600 {
                let t = Instant::now();
                batcher
                    .embed(
                        vec![qs[i % 3].to_owned()],
                        pai_inference::Priority::Interactive,
                    )
                    .await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "int8 single query through the batcher: p50 {:.2} ms",
                times[300]
            );
            anyhow::Ok(())
        })?;
        return Ok(());
    }
    for (name, e) in [("f32", &f), ("q8", &q), ("int8", &i8)] {
        for q in qs {
            let _ = e.embed(&[q])?;
        }
        let n = 100;
        let t = Instant::now();
        for i in 0..n {
            let _ = e.embed(&[qs[i % 3]])?;
        }
        println!(
            "{name} single query: {:.2} ms",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
        // As in a service, where other work runs between queries: 64 MiB
        // written between queries pushes the weights out of every cache.
        let mut other_work = vec![0_u8; 64 << 20];
        let mut cold = std::time::Duration::ZERO;
        for i in 0..30 {
            other_work.fill(i as u8);
            let t = Instant::now();
            let _ = e.embed(&[qs[i % 3]])?;
            cold += t.elapsed();
        }
        println!(
            "{name} single query, caches flushed before each: {:.2} ms",
            cold.as_secs_f64() * 1000.0 / 30.0
        );
        let batch: Vec<&str> = (0..16).map(|i| qs[i % 3]).collect();
        let t = Instant::now();
        for _ in 0..10 {
            let _ = e.embed(&batch)?;
        }
        println!(
            "{name} 16 queries batched: {:.2} ms per query",
            t.elapsed().as_secs_f64() * 1000.0 / (10.0 * 16.0)
        );
        let toks = e.count_tokens(&long)?;
        let t = Instant::now();
        for _ in 0..3 {
            let _ = e.embed(&long)?;
        }
        println!(
            "{name} 32 long texts: {:.0} tokens/s",
            (3 * toks) as f64 / t.elapsed().as_secs_f64()
        );
    }
    let a = f.embed(&qs)?;
    let mut long_a = f.embed(&long)?;
    long_a.truncate(4);
    for (name, e) in [("q8", &q), ("int8", &i8)] {
        let b = e.embed(&qs)?;
        let mut long_b = e.embed(&long)?;
        long_b.truncate(4);
        for (x, y) in a.iter().zip(&b).chain(long_a.iter().zip(&long_b)) {
            println!(
                "{name} cosine to f32 {:.5}",
                x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>()
            );
        }
    }
    Ok(())
}
