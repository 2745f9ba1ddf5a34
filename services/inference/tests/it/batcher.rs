//! The batcher's ordering: queries go before ingest, even mid-batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_inference::{BatchSizes, Batcher, Priority};

use crate::{MINUTES, cosine, embedder};

/// Far longer than any of these requests takes: a request that is never
/// answered (a lost wake-up, a worker stuck on its own lock) fails the test
/// instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(120);

async fn within<T>(work: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .expect("no answer: a request was left waiting")
}

#[tokio::test]
async fn a_query_is_answered_between_the_layers_of_a_running_bulk_batch() {
    // One bulk batch of 32 long texts: a single forward pass, which takes
    // far longer than a query. Before bulk batches paused between layers,
    // the query waited for all of it. One worker, so that no idle second
    // worker answers the query.
    let batcher = Arc::new(
        Batcher::start_with_workers(
            embedder(),
            BatchSizes {
                interactive: 32,
                bulk: 32,
            },
            1,
        )
        .unwrap(),
    );
    batcher
        .embed(vec!["warm up".to_owned()], Priority::Interactive)
        .await
        .unwrap();
    let chunk = MINUTES.repeat(4);
    let bulk = tokio::spawn({
        let batcher = Arc::clone(&batcher);
        async move {
            let started = Instant::now();
            let vectors = batcher
                .embed(vec![chunk; 32], Priority::Bulk)
                .await
                .unwrap();
            (vectors, started.elapsed(), Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let query = "What is the invoice total?";
    let started = Instant::now();
    let answer = within(batcher.embed(vec![query.to_owned()], Priority::Interactive))
        .await
        .unwrap();
    let (query_latency, query_done) = (started.elapsed(), Instant::now());
    let (vectors, bulk_duration, bulk_done) = within(bulk).await.unwrap();

    assert_eq!(vectors.len(), 32);
    let direct = embedder().embed(&[query]).unwrap();
    assert!(cosine(&answer[0], &direct[0]) > 0.999);
    assert!(
        query_done < bulk_done,
        "the query ({query_latency:?}) waited for the bulk batch ({bulk_duration:?})"
    );
}

#[tokio::test]
async fn concurrent_queries_on_two_workers_beside_ingest_get_their_own_vectors() {
    let batcher = Arc::new(
        Batcher::start_with_workers(
            embedder(),
            BatchSizes {
                interactive: 32,
                bulk: 2,
            },
            2,
        )
        .unwrap(),
    );
    let bulk = tokio::spawn({
        let batcher = Arc::clone(&batcher);
        async move {
            batcher
                .embed(vec![MINUTES.repeat(3); 12], Priority::Bulk)
                .await
        }
    });
    let queries: Vec<String> = (0..16)
        .map(|index| format!("What did invoice number {index} cost?"))
        .collect();
    let answers = within(futures::future::join_all(queries.iter().map(|query| {
        let batcher = Arc::clone(&batcher);
        let query = query.clone();
        async move { batcher.embed(vec![query], Priority::Interactive).await }
    })))
    .await;
    let direct = embedder()
        .embed(&queries.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    for ((query, answer), expected) in queries.iter().zip(answers).zip(&direct) {
        let answer = answer.unwrap();
        assert!(cosine(&answer[0], expected) > 0.999, "{query}");
    }
    let bulk = within(bulk).await.unwrap().unwrap();
    let alone = embedder().embed(&[MINUTES.repeat(3).as_str()]).unwrap();
    assert_eq!(bulk.len(), 12);
    assert!(bulk.iter().all(|vector| cosine(vector, &alone[0]) > 0.999));
}
