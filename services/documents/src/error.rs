//! The documents service's errors and how each reaches the caller.

use pai_common::{ErrorCode, ServiceError};

pub type Result<T, E = DocumentsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("document not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("this account was deleted")]
    Erased,
    #[error("the file is larger than the {0}-byte limit")]
    TooLarge(u64),
    #[error("only PDF files are accepted (the file does not start with %PDF-)")]
    NotPdf,
    #[error("search service: {0}")]
    Search(String),
    #[error("message broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("file storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<DocumentsError> for ServiceError {
    fn from(err: DocumentsError) -> Self {
        let code = match &err {
            DocumentsError::NotFound => ErrorCode::NotFound,
            DocumentsError::Erased => ErrorCode::Unauthenticated,
            DocumentsError::Invalid(_) => ErrorCode::BadRequest,
            DocumentsError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            DocumentsError::NotPdf => ErrorCode::UnsupportedMediaType,
            DocumentsError::Search(_) => ErrorCode::Unavailable,
            DocumentsError::Broker(_) | DocumentsError::Io(_) | DocumentsError::Database(_) => {
                tracing::error!(error = %err, "documents request failed");
                ErrorCode::Internal
            }
        };
        ServiceError::new(code, err.to_string())
    }
}

impl From<DocumentsError> for tonic::Status {
    fn from(err: DocumentsError) -> Self {
        ServiceError::from(err).into()
    }
}
