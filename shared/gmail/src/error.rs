//! How a Gmail call fails, sorted by what the caller does next: refresh the
//! token, do a full sync, back off, or give up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::wire::ErrorEnvelope;

/// A failed Gmail call.
#[derive(Debug, thiserror::Error)]
pub enum GmailError {
    /// 401: the access token is expired, revoked or unknown; refresh it.
    #[error("gmail refused the access token")]
    Unauthorized,
    /// 404: no such message; for `history.list`, the start history id is too
    /// old and the mailbox needs a full sync.
    #[error("gmail found no such entity")]
    NotFound,
    /// 429, or 403 with reason `rateLimitExceeded`/`userRateLimitExceeded`.
    #[error("gmail rate limit exceeded")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx: Google's side failed; trying later may work.
    #[error("gmail answered HTTP {0}")]
    Server(u16),
    /// Any other 4xx (bad argument, insufficient scope, ...): retrying the
    /// same call will not help.
    #[error("gmail answered HTTP {status} ({reason}): {message}")]
    Rejected {
        status: u16,
        reason: String,
        message: String,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("could not reach gmail")]
    Transport(#[source] reqwest::Error),
    /// The answer was not the JSON or base64 expected.
    #[error("gmail's answer could not be read: {0}")]
    Decode(String),
    /// The configured API base is not a URL that can take a path.
    #[error("invalid gmail api base url: {0}")]
    InvalidUrl(String),
}

impl GmailError {
    /// Returns whether the same call may succeed after a wait.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server(_) | Self::Transport(_) => true,
            Self::Unauthorized
            | Self::NotFound
            | Self::Rejected { .. }
            | Self::Decode(_)
            | Self::InvalidUrl(_) => false,
        }
    }

    /// Returns how long Google asked the caller to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            Self::Unauthorized
            | Self::NotFound
            | Self::Server(_)
            | Self::Rejected { .. }
            | Self::Transport(_)
            | Self::Decode(_)
            | Self::InvalidUrl(_) => None,
        }
    }

    /// Sorts a non-success answer by its status, Google's error envelope
    /// (when the body is one) and `Retry-After`.
    pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
        let reason = envelope
            .error
            .errors
            .first()
            .map(|detail| detail.reason.clone())
            .unwrap_or_else(|| envelope.error.status.clone());
        let message = envelope.error.message;
        tracing::debug!(status = status.as_u16(), %reason, %message, "gmail call failed");
        let rate_limited = || GmailError::RateLimited {
            retry_after: retry_after(headers, Utc::now()),
        };
        match status.as_u16() {
            401 => Self::Unauthorized,
            404 => Self::NotFound,
            429 => rate_limited(),
            403 if matches!(
                reason.as_str(),
                "rateLimitExceeded" | "userRateLimitExceeded"
            ) =>
            {
                rate_limited()
            }
            code if status.is_server_error() => Self::Server(code),
            code => Self::Rejected {
                status: code,
                reason,
                message,
            },
        }
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    (when.with_timezone(&Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn error(status: u16, body: &str, retry: Option<&str>) -> GmailError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        }
        let status = StatusCode::from_u16(status).expect("status");
        GmailError::from_response(status, &headers, body.as_bytes())
    }

    #[test]
    fn a_403_rate_limit_is_rate_limited_and_other_403s_are_rejected() {
        let body = r#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(
            error(403, body, Some("7")),
            GmailError::RateLimited { retry_after: Some(after) } if after == Duration::from_secs(7)
        ));
        let body = r#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","errors":[{"reason":"insufficientPermissions"}],"status":"PERMISSION_DENIED"}}"#;
        let GmailError::Rejected {
            reason, message, ..
        } = error(403, body, None)
        else {
            panic!("expected Rejected");
        };
        assert_eq!(reason, "insufficientPermissions");
        assert!(message.starts_with("Request had insufficient"));
    }

    #[test]
    fn statuses_map_without_an_envelope() {
        assert!(matches!(error(401, "", None), GmailError::Unauthorized));
        assert!(matches!(error(404, "<html>", None), GmailError::NotFound));
        assert!(matches!(error(502, "", None), GmailError::Server(502)));
        assert!(matches!(
            error(429, "", None),
            GmailError::RateLimited { retry_after: None }
        ));
    }

    #[test]
    fn retry_after_may_be_a_date() {
        let now = Utc::now();
        let later = (now + chrono::Duration::seconds(30)).to_rfc2822();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("header"));
        let after = retry_after(&headers, now).expect("a delay");
        assert!(after <= Duration::from_secs(30) && after >= Duration::from_secs(29));
    }
}
