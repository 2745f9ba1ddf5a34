//! The batcher's ordering: queries go before ingest, even mid-batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_inference::{BatchSizes, Batcher, Priority};

use crate::{MINUTES, cosine, embedder};

#[tokio::test]
async fn a_query_is_answered_between_the_layers_of_a_running_bulk_batch() {
    // One bulk batch of 32 long texts: a single forward pass, which takes
    // far longer than a query. Before bulk batches paused between layers,
    // the query waited for all of it.
    let batcher = Arc::new(
        Batcher::start(
            embedder(),
            BatchSizes {
                interactive: 32,
                bulk: 32,
            },
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
    let answer = batcher
        .embed(vec![query.to_owned()], Priority::Interactive)
        .await
        .unwrap();
    let (query_latency, query_done) = (started.elapsed(), Instant::now());
    let (vectors, bulk_duration, bulk_done) = bulk.await.unwrap();

    assert_eq!(vectors.len(), 32);
    let direct = embedder().embed(&[query]).unwrap();
    assert!(cosine(&answer[0], &direct[0]) > 0.999);
    assert!(
        query_done < bulk_done,
        "the query ({query_latency:?}) waited for the bulk batch ({bulk_duration:?})"
    );
}
