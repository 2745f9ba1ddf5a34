//! The auth service's errors and how each reaches the caller.

use chrono::{DateTime, SecondsFormat, Utc};
use pai_common::{ErrorCode, ServiceError};

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown login or wrong password: the same answer for both.
    #[error("invalid email, username or password")]
    InvalidCredentials,
    #[error("account locked after too many failed logins; try again after {}", .until.to_rfc3339_opts(SecondsFormat::Secs, true))]
    Locked { until: DateTime<Utc> },
    #[error("account is deactivated; reactivate it with POST /api/users/reactivate")]
    Deactivated,
    #[error("account was deactivated by an administrator; only an administrator can reactivate it")]
    DeactivatedByAdmin,
    #[error("too many password checks are waiting; try again shortly")]
    Busy,
    #[error("session expired or revoked")]
    SessionInvalid,
    #[error("invalid or expired refresh token")]
    RefreshInvalid,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// The password breaks a rule of the policy; the text names the rule.
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Invalid(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<AuthError> for ServiceError {
    fn from(err: AuthError) -> Self {
        let code = match &err {
            AuthError::InvalidCredentials
            | AuthError::SessionInvalid
            | AuthError::RefreshInvalid => ErrorCode::Unauthenticated,
            AuthError::Locked { .. } => ErrorCode::Locked,
            AuthError::Deactivated | AuthError::DeactivatedByAdmin | AuthError::WrongPassword => {
                ErrorCode::Forbidden
            }
            AuthError::Busy => ErrorCode::TooManyRequests,
            AuthError::NotFound(_) => ErrorCode::NotFound,
            AuthError::Conflict(_) => ErrorCode::Conflict,
            AuthError::Policy(_) => ErrorCode::Unprocessable,
            AuthError::Invalid(_) => ErrorCode::BadRequest,
            AuthError::Hash(_) | AuthError::Database(_) => {
                tracing::error!(error = %err, "auth request failed");
                ErrorCode::Internal
            }
        };
        let service_error = ServiceError::new(code, err.to_string());
        match err {
            AuthError::Locked { until } => service_error.with_details(serde_json::json!({
                "locked_until": until.to_rfc3339_opts(SecondsFormat::Secs, true),
                "retry_after": (until - Utc::now()).num_seconds().max(1),
            })),
            AuthError::Policy(rule) => {
                service_error.with_details(serde_json::json!({ "rule": rule_name(&rule) }))
            }
            AuthError::Busy => service_error.with_details(serde_json::json!({ "retry_after": 1 })),
            AuthError::Invalid(message) => match field_name(&message) {
                Some(field) => service_error.with_details(serde_json::json!({ "field": field })),
                None => service_error,
            },
            AuthError::InvalidCredentials
            | AuthError::Deactivated
            | AuthError::DeactivatedByAdmin
            | AuthError::SessionInvalid
            | AuthError::RefreshInvalid
            | AuthError::WrongPassword
            | AuthError::NotFound(_)
            | AuthError::Conflict(_)
            | AuthError::Hash(_)
            | AuthError::Database(_) => service_error,
        }
    }
}

/// The request field an `Invalid` message names ("email: not a valid …"),
/// for a client to show the error beside it.
fn field_name(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(':')?;
    (!field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .then_some(field)
}

/// The policy rule a message names (its first word before ':').
fn rule_name(message: &str) -> &str {
    message.split(':').next().unwrap_or(message)
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        ServiceError::from(err).into()
    }
}
