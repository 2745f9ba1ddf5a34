//! Request timeouts: a request that has no answer within its limit (a
//! body that trickles in, a backend that hangs) is answered 504
//! problem+json, and its handler, with the gRPC call it was making, is
//! dropped. Uploads get a limit of their own: a large file on a slow link
//! takes longer than any other request. So do questions (`POST
//! /api/queries`): an answer returned whole as JSON waits for the whole
//! generation. The limit runs until the response begins, so it never cuts
//! an answer streamed as server-sent events once its first byte is out.

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
/// The path questions are posted to.
const ASK_PATH: &str = "/api/queries";

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub request: Duration,
    pub upload: Duration,
    pub ask: Duration,
}

impl Timeouts {
    fn for_request(&self, request: &Request) -> Duration {
        if request.method() != Method::POST {
            return self.request;
        }
        match request.uri().path() {
            UPLOAD_PATH => self.upload,
            ASK_PATH => self.ask,
            _ => self.request,
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

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn request(method: Method, path: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn uploads_and_questions_have_their_own_limits() {
        let timeouts = Timeouts {
            request: Duration::from_secs(30),
            upload: Duration::from_secs(300),
            ask: Duration::from_secs(120),
        };
        let limit = |method, path| timeouts.for_request(&request(method, path));
        assert_eq!(limit(Method::POST, "/api/documents"), timeouts.upload);
        assert_eq!(limit(Method::POST, "/api/queries"), timeouts.ask);
        assert_eq!(limit(Method::GET, "/api/queries"), timeouts.request);
        assert_eq!(limit(Method::GET, "/api/documents"), timeouts.request);
        assert_eq!(limit(Method::DELETE, "/api/queries/x"), timeouts.request);
        assert_eq!(limit(Method::POST, "/api/queries/x"), timeouts.request);
    }
}
