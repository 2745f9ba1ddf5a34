//! Google's side of pai's mail sync, with no database and nothing of pai in
//! it: OAuth 2.0 consent, code exchange, refresh and revoke ([`oauth`]); the
//! Gmail v1 calls a sync needs ([`api`]); and a [`Session`] that runs those
//! calls with backoff and refreshes the access token when Google says so
//! ([`retry`]). The mail-sync service stores what it returns.

pub mod api;
mod error;
pub mod oauth;
pub mod retry;
mod tokens;
mod wire;

pub use crate::api::{
    GmailClient, GmailError, HistoryPage, Label, LabelKind, MessagePage, MessageRef, Profile,
    RawMessage,
};
pub use crate::oauth::{
    Authorization, GMAIL_READONLY_SCOPE, GoogleEndpoints, OAuthClient, OAuthError,
};
pub use crate::retry::{Backoff, Retryable, Session, SessionError};
pub use crate::tokens::Tokens;
