//! RFC 9457 problem+json responses, built from the shared error table.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pai_common::{ErrorCode, ServiceError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem body. Extra members (such as `locked_until` or
/// `rule`) sit beside the standard ones.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://pai.invalid/problems/{}", code.slug()),
            title: code.title().to_owned(),
            status: code.http_status(),
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` header (429, 423, 503).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self.extra
            .insert("retry_after".into(), Value::from(seconds.max(1)));
        self
    }
}

impl From<ServiceError> for Problem {
    fn from(err: ServiceError) -> Self {
        let mut problem = Problem::new(err.code, err.message);
        if let Some(Value::Object(details)) = err.details {
            let retry = details.get("retry_after").and_then(Value::as_u64);
            problem.extra.extend(details);
            if let Some(seconds) = retry {
                problem = problem.retry_after(seconds);
            }
        }
        problem
    }
}

impl From<tonic::Status> for Problem {
    /// The client reads a fixed sentence for an internal, unavailable or
    /// timed-out call ([`ServiceError::from_status`]); the log keeps what
    /// the backend or the channel said.
    fn from(status: tonic::Status) -> Self {
        let err = ServiceError::from_status(&status);
        if err.code.fixed_message().is_some() {
            tracing::warn!(code = ?status.code(), message = status.message(), "backend call failed");
        }
        err.into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, Problem>;

/// The most of a plain-text error body kept as a problem's detail.
const MAX_DETAIL_BYTES: usize = 4096;

/// Makes every error response a problem. Axum's own rejections (a query
/// string, a path or a multipart body that does not parse) answer plain
/// text; this rewrites any error that is not problem+json yet with the same
/// status, headers and text. A server error's text is never passed on.
pub async fn every_error_is_a_problem(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // Problems pass, and so do the web app's pages (its 404 page is HTML).
    let written_for_the_client =
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| {
                let value = value.as_bytes();
                value.starts_with(CONTENT_TYPE.as_bytes()) || value.starts_with(b"text/html")
            });
    if written_for_the_client || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let code = ErrorCode::ALL
        .into_iter()
        .find(|code| code.http_status() == status.as_u16())
        .unwrap_or(if status.is_server_error() {
            ErrorCode::Internal
        } else {
            ErrorCode::BadRequest
        });
    let detail = match code.fixed_message() {
        Some(sentence) => sentence.to_owned(),
        // A client error's text is axum's, written for the client.
        None if status.is_client_error() => {
            let bytes = axum::body::to_bytes(body, MAX_DETAIL_BYTES)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if text.is_empty() {
                status.canonical_reason().unwrap_or(code.title()).to_owned()
            } else {
                text
            }
        }
        None => pai_common::error::INTERNAL_MESSAGE.to_owned(),
    };
    let mut problem = Problem::new(code, detail);
    problem.status = status.as_u16();
    let mut rewritten = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    rewritten.headers_mut().extend(parts.headers);
    *rewritten.status_mut() = status;
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_backends_read_as_a_fixed_sentence() {
        let status = tonic::Status::unavailable(
            "error trying to connect: tcp connect error: Connection refused (10.1.2.3:50054)",
        );
        let problem = Problem::from(status);
        assert_eq!(problem.status, 503);
        assert_eq!(problem.detail, pai_common::error::UNAVAILABLE_MESSAGE);

        let problem = Problem::from(tonic::Status::deadline_exceeded("search at 10.1.2.3"));
        assert_eq!(problem.status, 504);
        assert_eq!(problem.detail, pai_common::error::TIMEOUT_MESSAGE);
    }
}
