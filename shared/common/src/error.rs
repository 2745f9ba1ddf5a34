//! The one table from an error's kind to its gRPC code and HTTP status.
//!
//! Services raise [`ServiceError`]s; they travel over gRPC as a status whose
//! `pai-error` metadata names the [`ErrorCode`] (so 423 or 422 survive the
//! trip, which plain gRPC codes cannot express), with optional JSON details
//! (such as `locked_until`) in the status details. The gateway turns them back
//! into RFC 9457 problem bodies. Every match here is exhaustive on purpose: a
//! new variant must be given a status, never fall into a silent 500.

use serde_json::Value;
use tonic::{Code, Status};

const ERROR_METADATA_KEY: &str = "pai-error";

/// What a client reads for an internal error, whatever the cause.
pub const INTERNAL_MESSAGE: &str = "the server could not complete the request";
/// What a client reads when a backend could not be reached or refused work.
pub const UNAVAILABLE_MESSAGE: &str = "the service is temporarily unavailable; retry later";
/// What a client reads when its request outlived its deadline.
pub const TIMEOUT_MESSAGE: &str = "the request took too long; retry later";

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Locked,
    Unprocessable,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    /// A call or a request outlived its deadline.
    Timeout,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 13] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::Locked,
        Self::Unprocessable,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::TooManyRequests,
        Self::Unavailable,
        Self::Timeout,
        Self::Internal,
    ];

    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unprocessable => 422,
            Self::Locked => 423,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }

    pub fn grpc_code(self) -> Code {
        match self {
            Self::BadRequest | Self::Unprocessable | Self::UnsupportedMediaType => {
                Code::InvalidArgument
            }
            Self::Unauthenticated => Code::Unauthenticated,
            Self::Forbidden => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::Conflict => Code::AlreadyExists,
            Self::Locked => Code::FailedPrecondition,
            Self::PayloadTooLarge => Code::OutOfRange,
            Self::TooManyRequests => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Internal => Code::Internal,
        }
    }

    /// A short machine-readable name, used as the problem `type` suffix.
    pub fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::Locked => "locked",
            Self::Unprocessable => "unprocessable",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::TooManyRequests => "too-many-requests",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// The problem `title`: the same for every occurrence of the code.
    /// The sentence a client reads for an error whose own text is not
    /// theirs to see (an internal error, a backend that could not be
    /// reached, a deadline): it says nothing a client can act on beyond
    /// retrying, and the detail goes to the log. `None` for the others,
    /// whose text is written for the client.
    pub fn fixed_message(self) -> Option<&'static str> {
        match self {
            Self::Internal => Some(INTERNAL_MESSAGE),
            Self::Unavailable => Some(UNAVAILABLE_MESSAGE),
            Self::Timeout => Some(TIMEOUT_MESSAGE),
            Self::BadRequest
            | Self::Unauthenticated
            | Self::Forbidden
            | Self::NotFound
            | Self::Conflict
            | Self::Locked
            | Self::Unprocessable
            | Self::PayloadTooLarge
            | Self::UnsupportedMediaType
            | Self::TooManyRequests => None,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad request",
            Self::Unauthenticated => "Unauthenticated",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::Conflict => "Conflict",
            Self::Locked => "Account locked",
            Self::Unprocessable => "Unprocessable content",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::TooManyRequests => "Too many requests",
            Self::Unavailable => "Service unavailable",
            Self::Timeout => "Timed out",
            Self::Internal => "Internal error",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.slug() == slug)
    }

    /// Maps a gRPC code that carries no `pai-error` metadata.
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss | Code::Unimplemented => {
                Self::Internal
            }
            Code::InvalidArgument => Self::BadRequest,
            Code::OutOfRange => Self::PayloadTooLarge,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::Forbidden,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists | Code::Aborted => Self::Conflict,
            Code::FailedPrecondition => Self::BadRequest,
            Code::ResourceExhausted => Self::TooManyRequests,
            Code::Cancelled | Code::Unavailable => Self::Unavailable,
            Code::DeadlineExceeded => Self::Timeout,
        }
    }
}

/// An error a service returns to its caller, safe to show to the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra members for the problem body (for example `locked_until`).
    pub details: Option<Value>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Recovers the error from a gRPC status, keeping code and details.
    pub fn from_status(status: &Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::from_slug)
            .unwrap_or_else(|| ErrorCode::from_grpc(status.code()));
        let details = serde_json::from_slice(status.details()).ok();
        // Never pass internal text on (the service logged its own; the
        // caller logs what its channel reported).
        let message = code
            .fixed_message()
            .map_or_else(|| status.message().to_owned(), str::to_owned);
        Self {
            code,
            message,
            details,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Self {
        let details = err
            .details
            .as_ref()
            .map(|d| serde_json::to_vec(d).unwrap_or_default())
            .unwrap_or_default();
        let mut status = Status::with_details(err.code.grpc_code(), err.message, details.into());
        status.metadata_mut().insert(
            ERROR_METADATA_KEY,
            tonic::metadata::MetadataValue::from_static(err.code.slug()),
        );
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_grpc_round_trip() {
        for code in ErrorCode::ALL {
            let status: Status = ServiceError::new(code, "x").into();
            assert_eq!(ServiceError::from_status(&status).code, code);
        }
    }

    #[test]
    fn internal_text_is_not_passed_on() {
        let status = Status::internal("relation auth.users does not exist");
        let err = ServiceError::from_status(&status);
        assert_eq!(err.code, ErrorCode::Internal);
        assert!(!err.message.contains("auth.users"));
    }

    #[test]
    fn unavailable_and_deadline_text_is_not_passed_on() {
        for status in [
            Status::unavailable("error trying to connect: tcp connect error 10.0.0.7:50055"),
            Status::cancelled("Timeout expired at 10.0.0.7:50055"),
            Status::deadline_exceeded("embedding service at 10.0.0.7:50055"),
            ServiceError::new(ErrorCode::Unavailable, "embedding service: 10.0.0.7:50055").into(),
        ] {
            let err = ServiceError::from_status(&status);
            assert!(
                matches!(err.code, ErrorCode::Unavailable | ErrorCode::Timeout),
                "{status:?}"
            );
            assert!(!err.message.contains("10.0.0.7"), "{}", err.message);
            assert!(
                [UNAVAILABLE_MESSAGE, TIMEOUT_MESSAGE].contains(&err.message.as_str()),
                "{}",
                err.message
            );
        }
        assert_eq!(
            ServiceError::from_status(&Status::deadline_exceeded("x")).code,
            ErrorCode::Timeout
        );
        assert_eq!(ErrorCode::Timeout.http_status(), 504);
    }

    #[test]
    fn details_survive_a_grpc_round_trip() {
        let status: Status = ServiceError::new(ErrorCode::Locked, "locked")
            .with_details(serde_json::json!({"locked_until": "2030-01-01T00:00:00Z"}))
            .into();
        let err = ServiceError::from_status(&status);
        assert_eq!(err.code, ErrorCode::Locked);
        assert_eq!(err.details.unwrap()["locked_until"], "2030-01-01T00:00:00Z");
    }
}
