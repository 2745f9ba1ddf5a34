//! The inference service's errors and how each reaches the caller.

use pai_common::{ErrorCode, ServiceError};

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;

/// Everything that can go wrong between a request and its vectors. Cloneable,
/// because one failed batch answers every request that had texts in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    #[error("{0}")]
    Invalid(String),
    #[error("at most {max} texts per request, got {got}")]
    TooManyTexts { max: usize, got: usize },
    #[error("the embedding worker has stopped")]
    Stopped,
    #[error("loading the model from {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    /// An Ask request that must not be taken: an empty or oversized
    /// question, a bad filter.
    #[error("{0}")]
    Unprocessable(String),
    #[error("no such query")]
    NotFound,
    /// The queue of questions is full; try again after `retry_after_secs`.
    #[error("pai is answering {waiting} other questions; try again in {retry_after_secs} s")]
    Busy {
        waiting: usize,
        retry_after_secs: u64,
    },
    #[error("the generation thread has stopped")]
    GenerationStopped,
    #[error("database: {0}")]
    Database(String),
    /// The user's data was erased (their account is deleted).
    #[error("this account was deleted")]
    Erased,
}

impl From<sqlx::Error> for InferenceError {
    fn from(err: sqlx::Error) -> Self {
        if pai_common::db::is_erased_user(&err) {
            Self::Erased
        } else {
            Self::Database(err.to_string())
        }
    }
}

impl From<candle_core::Error> for InferenceError {
    fn from(err: candle_core::Error) -> Self {
        Self::Model(err.to_string())
    }
}

impl From<pai_int8::Int8Error> for InferenceError {
    fn from(err: pai_int8::Int8Error) -> Self {
        Self::Model(err.to_string())
    }
}

impl From<InferenceError> for ServiceError {
    fn from(err: InferenceError) -> Self {
        let code = match &err {
            InferenceError::Invalid(_) => ErrorCode::BadRequest,
            InferenceError::TooManyTexts { .. } => ErrorCode::PayloadTooLarge,
            InferenceError::Unprocessable(_) => ErrorCode::Unprocessable,
            InferenceError::NotFound | InferenceError::Erased => ErrorCode::NotFound,
            InferenceError::Busy { .. } => ErrorCode::TooManyRequests,
            InferenceError::Stopped | InferenceError::GenerationStopped => ErrorCode::Unavailable,
            InferenceError::Load { .. }
            | InferenceError::Tokenizer(_)
            | InferenceError::Model(_)
            | InferenceError::Database(_) => {
                tracing::error!(error = %err, "inference request failed");
                ErrorCode::Internal
            }
        };
        ServiceError::new(code, err.to_string())
    }
}

impl From<InferenceError> for tonic::Status {
    fn from(err: InferenceError) -> Self {
        let retry_after = if let InferenceError::Busy {
            retry_after_secs, ..
        } = &err
        {
            Some(*retry_after_secs)
        } else {
            None
        };
        let mut status: tonic::Status = ServiceError::from(err).into();
        if let Some(secs) = retry_after
            && let Ok(value) = secs.to_string().parse()
        {
            status.metadata_mut().insert(RETRY_AFTER, value);
        }
        status
    }
}

/// The metadata key of a busy answer: seconds to wait before trying again.
pub const RETRY_AFTER: &str = "retry-after";

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_error_gets_its_status() {
        let cases = [
            (
                InferenceError::Invalid("no texts".into()),
                Code::InvalidArgument,
            ),
            (
                InferenceError::TooManyTexts { max: 256, got: 300 },
                Code::OutOfRange,
            ),
            (InferenceError::Stopped, Code::Unavailable),
            (InferenceError::Model("shape".into()), Code::Internal),
            (InferenceError::NotFound, Code::NotFound),
            (
                InferenceError::Unprocessable("empty".into()),
                Code::InvalidArgument,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(tonic::Status::from(err).code(), code);
        }
    }

    #[test]
    fn a_busy_answer_says_when_to_retry() {
        let status = tonic::Status::from(InferenceError::Busy {
            waiting: 32,
            retry_after_secs: 4,
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("4")
        );
    }
}
