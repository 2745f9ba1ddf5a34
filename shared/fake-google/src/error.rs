//! Google's two error shapes: the API envelope (`{"error": {code, message,
//! errors, status}}`) and the OAuth one (`{"error", "error_description"}`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Gmail API error, answered in Google's JSON error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// 401: missing, unknown, expired or revoked access token.
    Unauthenticated,
    /// 403: the token's scope does not allow the call.
    InsufficientScope,
    /// 403: `userId` names another account.
    DelegationDenied,
    /// 404: unknown message or attachment, or an expired `startHistoryId`.
    NotFound,
    /// 400: a parameter is missing or malformed.
    InvalidArgument(&'static str),
    /// 429: injected rate limit.
    RateLimited,
    /// 503: injected backend error.
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, reason, status_name) = match self {
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError",
                "UNAUTHENTICATED",
            ),
            Self::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
                "PERMISSION_DENIED",
            ),
            Self::DelegationDenied => (
                StatusCode::FORBIDDEN,
                "Delegation denied for the requested user.",
                "forbidden",
                "PERMISSION_DENIED",
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Requested entity was not found.",
                "notFound",
                "NOT_FOUND",
            ),
            Self::InvalidArgument(message) => (
                StatusCode::BAD_REQUEST,
                message,
                "invalidArgument",
                "INVALID_ARGUMENT",
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many concurrent requests for user",
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is currently unavailable.",
                "backendError",
                "UNAVAILABLE",
            ),
        };
        let mut detail = json!({"message": message, "domain": "global", "reason": reason});
        if self == Self::Unauthenticated {
            detail["message"] = json!("Invalid Credentials");
            detail["location"] = json!("Authorization");
            detail["locationType"] = json!("header");
        }
        let body = json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [detail],
            "status": status_name,
        }});
        let mut response = (status, Json(body)).into_response();
        if self == Self::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}

/// An OAuth token or revoke endpoint error: `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn invalid_grant(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.to_owned(),
        }
    }

    pub fn invalid_request(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.to_owned(),
        }
    }

    pub fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Unauthorized".to_owned(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        (self.status, Json(body)).into_response()
    }
}
