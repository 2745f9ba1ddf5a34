//! Request timeouts: a request that has no answer within its limit (a
//! body that trickles in, a backend that hangs) is answered 504
//! problem+json, and its handler, with the gRPC call it was making, is
//! dropped. Uploads get a limit of their own: a large file on a slow link
//! takes longer than any other request.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pai_common::ErrorCode;
use pai_common::error::TIMEOUT_MESSAGE;

use crate::problem::Problem;

/// The path uploads are posted to.
const UPLOAD_PATH: &str = "/api/documents";

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub request: Duration,
    pub upload: Duration,
}

impl Timeouts {
    fn for_request(&self, request: &Request) -> Duration {
        if request.method() == Method::POST && request.uri().path() == UPLOAD_PATH {
            self.upload
        } else {
            self.request
        }
    }
}

/// Middleware: answers 504 when the rest of the stack takes longer than
/// the request's limit.
pub async fn limit(State(timeouts): State<Timeouts>, request: Request, next: Next) -> Response {
    let limit = timeouts.for_request(&request);
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%method, path, ?limit, "request timed out");
            Problem::new(ErrorCode::Timeout, TIMEOUT_MESSAGE).into_response()
        }
    }
}
