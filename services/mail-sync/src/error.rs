//! The mail-sync service's errors and how each reaches the caller.

use pai_common::{ErrorCode, ServiceError};

use crate::crypto::CryptoError;

pub type Result<T, E = MailError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Gmail is not configured (`GMAIL_CLIENT_ID`, `GMAIL_CLIENT_SECRET`,
    /// `MAIL_TOKEN_ENCRYPTION_KEY`).
    #[error(
        "Gmail is not configured on this server: set GMAIL_CLIENT_ID, GMAIL_CLIENT_SECRET and MAIL_TOKEN_ENCRYPTION_KEY"
    )]
    NotConfigured,
    /// The connect's `state` is unknown, used or expired.
    #[error("this Gmail connect link is {0}; start the connect again")]
    BadState(&'static str),
    /// Google declined or failed the connect.
    #[error("Google did not connect the account: {0}")]
    Connect(String),
    /// Google refused the stored refresh token: the user must connect again.
    #[error("Google refused this account's access; connect it again")]
    ReauthRequired,
    /// `pai import-sqlite` is bringing mail into the account: a sync now
    /// would store twice what is not imported yet.
    #[error(
        "mail is being imported into this account; its first sync starts by itself a minute after the import"
    )]
    Importing,
    #[error("Gmail: {0}")]
    Gmail(String),
    #[error("stored tokens: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the job queue: {0}")]
    Queue(String),
    #[error("search: {0}")]
    Search(String),
    #[error("database: {0}")]
    Database(String),
    /// The user's data was erased (their account is deleted).
    #[error("this account was deleted")]
    Erased,
}

impl From<sqlx::Error> for MailError {
    fn from(err: sqlx::Error) -> Self {
        if pai_common::db::is_erased_user(&err) {
            Self::Erased
        } else {
            Self::Database(err.to_string())
        }
    }
}

impl From<MailError> for ServiceError {
    fn from(err: MailError) -> Self {
        let code = match &err {
            MailError::Invalid(_) => ErrorCode::BadRequest,
            MailError::NotFound(_) | MailError::Erased => ErrorCode::NotFound,
            MailError::NotConfigured => ErrorCode::Unavailable,
            MailError::BadState(_) | MailError::Connect(_) => ErrorCode::BadRequest,
            MailError::ReauthRequired | MailError::Importing => ErrorCode::Conflict,
            MailError::Gmail(_) | MailError::Search(_) | MailError::Queue(_) => {
                ErrorCode::Unavailable
            }
            MailError::Crypto(_) | MailError::Database(_) => {
                tracing::error!(error = %err, "mail request failed");
                ErrorCode::Internal
            }
        };
        if matches!(code, ErrorCode::Unavailable) {
            tracing::warn!(error = %err, "mail request failed");
        }
        let not_configured = matches!(err, MailError::NotConfigured);
        let error = ServiceError::new(code, err.to_string());
        // A 503's text is fixed on the way out; the reason says which one.
        if not_configured {
            error.with_details(serde_json::json!({ "reason": "gmail_not_configured" }))
        } else {
            error
        }
    }
}

impl From<MailError> for tonic::Status {
    fn from(err: MailError) -> Self {
        ServiceError::from(err).into()
    }
}
