//! The search service's errors and how each reaches the caller.

use pai_common::{ErrorCode, ServiceError};

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Invalid(String),
    #[error("q: the query is longer than {0} characters; shorten it")]
    QueryTooLong(usize),
    #[error("embedding service: {0}")]
    Embedding(String),
    #[error("text index: {0}")]
    TextIndex(#[from] tantivy::TantivyError),
    #[error("vector index: {0}")]
    VectorIndex(String),
    #[error("index files: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A call for a user another shard owns (routed by another shard count,
    /// while the replicas change it).
    #[error("user {user} belongs to search shard {owner}, not to this shard ({shard})")]
    NotOwner {
        user: uuid::Uuid,
        owner: u32,
        shard: pai_common::shards::Shard,
    },
    /// A search's turn at an index was refused (its semaphore closed).
    #[error("search is shutting down")]
    ShuttingDown(#[from] tokio::sync::AcquireError),
}

impl SearchError {
    /// Whether a write was refused because its user's account was erased.
    pub fn is_erased_user(&self) -> bool {
        matches!(self, SearchError::Database(err) if pai_common::db::is_erased_user(err))
    }
}

impl From<SearchError> for ServiceError {
    fn from(err: SearchError) -> Self {
        if err.is_erased_user() {
            return ServiceError::new(
                ErrorCode::NotFound,
                "the user was erased: no chunk of theirs is stored",
            );
        }
        let code = match &err {
            SearchError::Invalid(_) => ErrorCode::BadRequest,
            SearchError::QueryTooLong(_) => ErrorCode::Unprocessable,
            SearchError::Embedding(_)
            | SearchError::ShuttingDown(_)
            | SearchError::NotOwner { .. } => {
                // The detail stays here; the caller reads a fixed sentence.
                tracing::warn!(error = %err, "search could not be served");
                ErrorCode::Unavailable
            }
            SearchError::TextIndex(_)
            | SearchError::VectorIndex(_)
            | SearchError::Io(_)
            | SearchError::Database(_) => {
                tracing::error!(error = %err, "search request failed");
                ErrorCode::Internal
            }
        };
        ServiceError::new(code, err.to_string())
    }
}

impl From<SearchError> for tonic::Status {
    fn from(err: SearchError) -> Self {
        ServiceError::from(err).into()
    }
}
