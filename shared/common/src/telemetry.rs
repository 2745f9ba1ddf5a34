//! Logging: a `RUST_LOG` filter, plain or JSON lines by `LOG_FORMAT`;
//! traces exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (off by default; the spans and their propagation are in
//! [`crate::trace_context`]); and the stage timings services record for
//! `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Env;

const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn,h2=warn,tower=warn,hyper=warn";

/// The exporter's provider, kept to flush it at exit ([`shutdown`]).
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Calls each gRPC server answered, by `method` (`/pai.v1.SearchService/Search`,
/// `other` for one it does not serve) and `code` (the gRPC status code).
pub const GRPC_REQUESTS: &str = "pai_grpc_requests_total";
/// How long those calls took until their response began (a summary).
pub const GRPC_REQUEST_SECONDS: &str = "pai_grpc_request_duration_seconds";

/// The process-wide Prometheus recorder (installed on first use): what the
/// gateway's `/metrics` and `METRICS_ADDR` serve.
pub fn prometheus() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// Installs the global subscriber once; later calls do nothing. With
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, spans are also exported there over OTLP
/// (gRPC) as the service `OTEL_SERVICE_NAME` (default `pai`); building the
/// exporter needs a Tokio runtime entered.
pub fn init(env: &Env) {
    crate::trace_context::install_propagator();
    let filter = EnvFilter::try_new(env.string("RUST_LOG", DEFAULT_FILTER))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if env.string("LOG_FORMAT", "plain") == "json" {
        lines.json().flatten_event(true).boxed()
    } else {
        lines.boxed()
    };
    let provider = match exporter(env) {
        Ok(provider) => provider,
        Err(err) => {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT: no trace exporter: {err}");
            None
        }
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("pai"))
            .boxed()
    });
    let result = tracing_subscriber::registry()
        .with(lines)
        .with(traces)
        .with(filter)
        .try_init();
    // Already installed (tests start many stacks in one process): keep it.
    if result.is_ok()
        && let Some(provider) = provider
    {
        let _ = PROVIDER.set(provider);
    }
}

/// The OTLP exporter's provider, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
fn exporter(env: &Env) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(env.string("OTEL_SERVICE_NAME", "pai"))
                    .build(),
            )
            .build(),
    ))
}

/// Exports the spans not yet sent (blocking; call it off the runtime's
/// threads or after the runtime's work is done).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(err) = provider.shutdown()
    {
        eprintln!("exporting the last traces: {err}");
    }
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
