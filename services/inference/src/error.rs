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
            InferenceError::Stopped => ErrorCode::Unavailable,
            InferenceError::Load { .. }
            | InferenceError::Tokenizer(_)
            | InferenceError::Model(_) => {
                tracing::error!(error = %err, "inference request failed");
                ErrorCode::Internal
            }
        };
        ServiceError::new(code, err.to_string())
    }
}

impl From<InferenceError> for tonic::Status {
    fn from(err: InferenceError) -> Self {
        ServiceError::from(err).into()
    }
}

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
        ];
        for (err, code) in cases {
            assert_eq!(tonic::Status::from(err).code(), code);
        }
    }
}
