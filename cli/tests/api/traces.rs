//! One trace per request across the services: an upload and a search, each
//! seen as the gateway's span and every service's span under one trace id,
//! with the services called in process and over the network. The spans are
//! kept by the SDK's in-memory exporter, read after the requests.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::{Options, TestApp, spawn_app_with};

fn token(user: &serde_json::Value) -> String {
    user["access_token"].as_str().expect("token").to_owned()
}

/// The spans of the trace whose root is the gateway's span `name`.
fn trace_of<'a>(spans: &'a [SpanData], name: &str) -> (TraceId, Vec<&'a SpanData>) {
    let root = spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}: {:?}", names(spans)));
    assert_eq!(root.parent_span_id, SpanId::INVALID, "{name} is a root");
    let trace = root.span_context.trace_id();
    let members = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    (trace, members)
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

/// Every span of `members` but the root has its parent among them: the
/// services' spans hang under the gateway's, not beside it.
fn assert_connected(members: &[&SpanData]) {
    let ids: HashSet<SpanId> = members.iter().map(|s| s.span_context.span_id()).collect();
    for span in members {
        assert!(
            span.parent_span_id == SpanId::INVALID || ids.contains(&span.parent_span_id),
            "{} has a parent outside the trace",
            span.name
        );
    }
}

/// The spans of every test in this process from the first call on: the
/// global subscriber, recording into memory. (A subscriber of this test's
/// thread only missed spans now and then: tracing caches per call site
/// which subscribers want its spans, and the tests running beside it on
/// other threads raced that cache.)
fn recorded() -> &'static (SdkTracerProvider, InMemorySpanExporter) {
    static RECORDED: OnceLock<(SdkTracerProvider, InMemorySpanExporter)> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        pai_common::trace_context::install_propagator();
        // pai's spans, not the HTTP/2 and database libraries' own.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                "info,h2=off,hyper=off,hyper_util=off,tower=off,tonic=off,sqlx=off,lapin=off,reqwest=off",
            ))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("pai-tests")));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber (unset TEST_LOG for this test)");
        (provider, exporter)
    })
}

async fn upload_and_search_traced(options: Options) {
    let (provider, exporter) = recorded();
    let app: TestApp = spawn_app_with(options).await;
    let user = app.register("tracy").await;
    let t = token(&user);
    let doc = app.upload(&t, "gen_crazy_ones_pdfa.pdf").await;
    let id = doc["id"].as_str().expect("id").to_owned();
    let indexed = app.wait_document(&t, &id).await;
    assert_eq!(indexed["status"], "indexed", "{indexed}");
    exporter.reset();

    let doc = app.upload(&t, "fin_aws_invoice_2014.pdf").await;
    let id = doc["id"].as_str().expect("id").to_owned();
    let indexed = app.wait_document(&t, &id).await;
    assert_eq!(indexed["status"], "indexed", "{indexed}");
    let r = app
        .search(&t, "the round pegs in the square holes", "")
        .await;
    assert!(
        !r.body["hits"].as_array().expect("hits").is_empty(),
        "{}",
        r.body
    );
    // A server's span closes when its response is done, just after the
    // client has it: wait for the last of them.
    let mut spans = Vec::new();
    for _ in 0..100 {
        provider.force_flush().expect("flush");
        spans = exporter.get_finished_spans().expect("spans");
        let closed = |name: &str| spans.iter().any(|s| s.name == name);
        if closed("POST /api/documents") && closed("GET /api/search") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (upload, members) = trace_of(&spans, "POST /api/documents");
    for service in [
        "/pai.v1.DocumentService/Upload",
        "ingest document",
        "/pai.v1.SearchInternal/IndexChunks",
        "/pai.v1.InferenceInternal/Embed",
    ] {
        assert!(
            members.iter().any(|s| s.name == service),
            "{service} in the upload's trace: {:?}",
            members.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    assert_connected(&members);

    let (search, members) = trace_of(&spans, "GET /api/search");
    for service in [
        "/pai.v1.SearchService/Search",
        "/pai.v1.InferenceInternal/Embed",
    ] {
        assert!(
            members.iter().any(|s| s.name == service),
            "{service} in the search's trace: {:?}",
            members.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }
    assert_connected(&members);
    assert_ne!(upload, search, "one trace per request");
    app.finish().await;
}

/// Both ways, one after the other: the spans of tests beside it are
/// recorded too, but only this test reads and resets them.
#[tokio::test]
async fn one_trace_per_request_through_the_services_in_process_and_over_the_network() {
    upload_and_search_traced(Options::default()).await;
    upload_and_search_traced(Options::default().var("IN_PROCESS_CALLS", "false")).await;
}
