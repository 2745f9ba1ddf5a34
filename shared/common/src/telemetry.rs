//! Logging: a `RUST_LOG` filter, plain or JSON lines by `LOG_FORMAT`; and
//! the stage timings services record for `/metrics`.

use std::time::Instant;

use tracing_subscriber::EnvFilter;

use crate::config::Env;

const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,h2=warn,tower=warn,hyper=warn";

/// Installs the global subscriber once; later calls do nothing.
pub fn init(env: &Env) {
    let filter = EnvFilter::try_new(env.string("RUST_LOG", DEFAULT_FILTER))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if env.string("LOG_FORMAT", "plain") == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests start many stacks in one process): keep it.
    drop(result);
}

/// Histogram of ingest stages (`stage`: extract, index_call in documents;
/// embed, store, index in search), exported by the gateway's `/metrics` when
/// the services share its process.
pub const INGEST_STAGE_SECONDS: &str = "pai_ingest_stage_seconds";
/// Histogram of search stages (`stage`: embed, bm25 with the snippet
/// generator, vector, hydrate with the snippets; embed overlaps bm25).
pub const SEARCH_STAGE_SECONDS: &str = "pai_search_stage_seconds";

/// Records the time since `started` under `stage` of the histogram `metric`;
/// returns the start of the next stage.
pub fn stage_done(metric: &'static str, stage: &'static str, started: Instant) -> Instant {
    metrics::histogram!(metric, "stage" => stage).record(started.elapsed().as_secs_f64());
    Instant::now()
}
