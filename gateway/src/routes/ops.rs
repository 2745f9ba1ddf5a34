//! Health, readiness, metrics, the OpenAPI document and the fallbacks.

use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use pai_common::ErrorCode;
use utoipa::OpenApi;

use crate::metrics;
use crate::openapi::ApiDoc;
use crate::problem::Problem;
use crate::readiness::ReadinessReport;
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "the process is alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Answers from a check at most a few seconds old: `ok` or `failed` per
/// dependency, the reasons in the log.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = ReadinessReport), (status = 503, body = ReadinessReport)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, axum::Json<ReadinessReport>) {
    let report = state.readiness.report(&state.revocations).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics_text() -> Response {
    let body = metrics::handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// A self-contained page that renders `/api/openapi.json` (no CDN: pai works offline).
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

pub async fn not_found(OriginalUri(uri): OriginalUri) -> Problem {
    Problem::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

pub async fn method_not_allowed(OriginalUri(uri): OriginalUri) -> Response {
    let mut problem = Problem::new(
        ErrorCode::BadRequest,
        format!("method not allowed on {}", uri.path()),
    );
    problem.status = 405;
    problem.title = "Method not allowed".to_owned();
    problem.into_response()
}
