//! One trace across the gateway and every gRPC hop: W3C trace context
//! (`traceparent`, `tracestate`) travels in HTTP headers and gRPC metadata.
//!
//! - A client puts its current span's context on each call
//!   ([`inject`]; [`crate::grpc::LocalServers`]' channels do it for every
//!   call, in process or not).
//! - A server opens a span per call whose parent is the caller's context
//!   ([`server_span`]: tonic's `trace_fn` over the network, the in-process
//!   channel for calls made in process; the gateway's HTTP span the same
//!   way from the browser's headers, if it sent any).
//!
//! Without an exporter ([`crate::telemetry::init`]) the spans are the logs'
//! and nothing is injected.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes W3C trace context the way contexts travel (idempotent).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct ReadHeaders<'a>(&'a http::HeaderMap);

impl Extractor for ReadHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes the current span's trace context into `carrier`.
fn inject_current(carrier: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, carrier);
    });
}

/// Makes `span` (not yet entered) a part of the trace `carrier` names.
fn follow(span: &tracing::Span, carrier: &dyn Extractor) {
    let context =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    // Fails only without a trace layer (nothing exported): nothing to link.
    let _ = span.set_parent(context);
}

/// Puts the current span's trace context on an outgoing request's headers
/// (gRPC metadata are HTTP/2 headers).
pub fn inject(headers: &mut http::HeaderMap) {
    inject_current(&mut Headers(headers));
}

/// The current span's trace context as a map (`traceparent`, `tracestate`)
/// to carry in a queued job, so that its work continues the trace of the
/// request that queued it ([`job_span`]). Empty without an exporter.
pub fn carrier() -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    inject_current(&mut carrier);
    carrier
}

/// The span of a queued job's work, under the trace its [`carrier`] names.
pub fn job_span(name: &'static str, carrier: &HashMap<String, String>) -> tracing::Span {
    let span = tracing::info_span!("job", otel.name = name, otel.kind = "consumer");
    follow(&span, carrier);
    span
}

/// Makes `span` (not yet entered) a part of the trace `headers` carry.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    follow(span, &ReadHeaders(headers));
}

/// The span of one gRPC call a server answers, named after its method
/// (`/pai.v1.SearchService/Search`), under the caller's trace.
pub fn server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        otel.name = %request.uri().path(),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    continue_trace(&span, request.headers());
    span
}
