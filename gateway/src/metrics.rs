//! Prometheus metrics, recorded by one middleware for every request, and
//! the one count it cannot see: a streamed answer whose client left before
//! its end (the middleware sees only when the response began).
//!
//! Every label takes one of a known, small set of values, so that no client
//! can add series: the route is the matched route's template (a request
//! that matched none is `other`), the method one of the standard ones
//! (any other is `other`) and the status a number between 100 and 999.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;

/// The label value of a route or method that is not one of the known ones.
pub const OTHER: &str = "other";

/// The process-wide recorder's handle (installed on first use).
pub fn handle() -> Option<PrometheusHandle> {
    pai_common::telemetry::prometheus()
}

/// The method's label: a standard method's name, else [`OTHER`].
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or(OTHER, Method::as_str)
}

/// The route's label: the template of the route it matched (a fixed set,
/// those the router declares), else [`OTHER`].
fn route_label(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| OTHER.to_owned(), |p| p.as_str().to_owned())
}

/// Counts an answer streamed as server-sent events whose client went away
/// before its `done` event (the generation is cancelled with it).
pub fn ask_stream_dropped() {
    metrics::counter!("pai_gateway_ask_streams_dropped_total").increment(1);
}

pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(&request);
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("pai_gateway_requests_total", &labels).increment(1);
    metrics::histogram!("pai_gateway_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for custom in ["BREW", "PROPFIND", "X-SCAN-1234"] {
            let method = Method::from_bytes(custom.as_bytes()).unwrap();
            assert_eq!(method_label(&method), OTHER);
        }
    }
}
