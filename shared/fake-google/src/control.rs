//! The test knobs: methods on [`FakeGoogleHandle`] and the same as HTTP
//! routes under `/_fake/` for tests that run the fake as its own process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;

use crate::mailbox::{Mailbox, StoredMessage};
use crate::state::{AuthorizationRequest, GrantInfo, Shared};

/// A handle on a running fake, for tests: inspect and change its state.
#[derive(Debug, Clone)]
pub struct FakeGoogleHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addr: SocketAddr,
}

impl FakeGoogleHandle {
    /// Returns `http://127.0.0.1:PORT`, the base of every endpoint.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the authorization endpoint URL.
    pub fn auth_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.base_url())
    }

    /// Returns the token endpoint URL.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// Returns the revoke endpoint URL.
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    /// Returns the Gmail API base (`.../gmail/v1`).
    pub fn gmail_url(&self) -> String {
        format!("{}/gmail/v1", self.base_url())
    }

    /// Creates an empty mailbox for an address unless one exists.
    pub fn ensure_mailbox(&self, email: &str) {
        let mut inner = self.shared.lock();
        inner.mailboxes.entry(email.to_owned()).or_insert_with(|| {
            let mut mailbox = Mailbox::new();
            mailbox.set_id_seed(email);
            mailbox
        });
    }

    /// Adds a message (labels `INBOX`, `UNREAD` when `label_ids` is empty),
    /// records `messagesAdded`, and returns the message id; `None` when the
    /// mailbox does not exist.
    pub fn add_message(&self, email: &str, raw: Vec<u8>, label_ids: &[&str]) -> Option<String> {
        self.add_message_full(email, raw, label_ids)
            .map(|message| message.id)
    }

    fn add_message_full(
        &self,
        email: &str,
        raw: Vec<u8>,
        label_ids: &[&str],
    ) -> Option<StoredMessage> {
        let labels = if label_ids.is_empty() {
            vec!["INBOX".to_owned(), "UNREAD".to_owned()]
        } else {
            label_ids.iter().map(|label| (*label).to_owned()).collect()
        };
        let mut inner = self.shared.lock();
        let mailbox = inner.mailboxes.get_mut(email)?;
        Some(mailbox.add(raw, labels, None))
    }

    /// Deletes a message and records `messagesDeleted`; returns whether it existed.
    pub fn delete_message(&self, email: &str, id: &str) -> bool {
        let mut inner = self.shared.lock();
        inner
            .mailboxes
            .get_mut(email)
            .is_some_and(|mailbox| mailbox.delete(id))
    }

    /// Expires the mailbox's history: `history.list` from any
    /// `startHistoryId` before now answers 404.
    pub fn expire_history(&self, email: &str) {
        if let Some(mailbox) = self.shared.lock().mailboxes.get_mut(email) {
            mailbox.expire_history();
        }
    }

    /// Returns the mailbox's current history id.
    pub fn history_id(&self, email: &str) -> Option<u64> {
        self.shared
            .lock()
            .mailboxes
            .get(email)
            .map(Mailbox::history_id)
    }

    /// Returns the mailbox's message ids, newest first.
    pub fn message_ids(&self, email: &str) -> Vec<String> {
        let inner = self.shared.lock();
        inner
            .mailboxes
            .get(email)
            .map(|mailbox| {
                mailbox
                    .newest_first()
                    .into_iter()
                    .map(|m| m.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Expires every access token issued so far (Gmail answers 401).
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for token in self.shared.lock().access_tokens.values_mut() {
            token.expires_at = now;
        }
    }

    /// Records a grant of offline read-only access to `email`'s mail that an
    /// app obtained before (an older install's consent): `refresh_token`
    /// refreshes as if this server had issued it.
    pub fn grant_offline_access(&self, email: &str, refresh_token: &str) {
        let client_id = self.shared.config.client_id.clone();
        self.shared.lock().grants.push(GrantInfo {
            email: email.to_owned(),
            client_id,
            scope: crate::GMAIL_READONLY_SCOPE.to_owned(),
            offline: true,
            refresh_token: Some(refresh_token.to_owned()),
            revoked: false,
        });
    }

    /// Revokes the grant of one refresh token (refresh → `invalid_grant`);
    /// returns whether it was known.
    pub fn revoke_refresh_token(&self, refresh_token: &str) -> bool {
        self.revoke_where(|grant| grant.refresh_token.as_deref() == Some(refresh_token)) > 0
    }

    /// Revokes every grant of an account, as if the user removed pai's access
    /// in their Google account; returns how many.
    pub fn revoke_account(&self, email: &str) -> usize {
        self.revoke_where(|grant| grant.email == email)
    }

    fn revoke_where(&self, predicate: impl Fn(&GrantInfo) -> bool) -> usize {
        let mut inner = self.shared.lock();
        let revoked: Vec<usize> = (0..inner.grants.len())
            .filter(|&index| predicate(&inner.grants[index]))
            .collect();
        for &index in &revoked {
            inner.grants[index].revoked = true;
        }
        inner
            .access_tokens
            .retain(|_, token| !revoked.contains(&token.grant));
        revoked.len()
    }

    /// Makes the next `count` Gmail calls fail with `status`: 429
    /// (`rateLimitExceeded`) or 503 (`backendError`); any other status means 429.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.fail_after(0, count, status);
    }

    /// Lets `pass` Gmail calls through, then fails the `count` after them
    /// with `status` (a sync cut off halfway).
    pub fn fail_after(&self, pass: u32, count: u32, status: u16) {
        let mut inner = self.shared.lock();
        inner.pass_first = pass;
        inner.fail_next = count;
        inner.fail_status = status;
    }

    /// Makes every Gmail call wait `latency` before it is answered (a slow
    /// Google, so a test can act while a sync is under way); zero: none.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Makes the next authorization answer `error=access_denied`, as when the
    /// user declines consent.
    pub fn deny_next_authorization(&self) {
        self.shared.lock().deny_next_authorization = true;
    }

    /// Sets the account the consent grants when no `login_hint` names a mailbox.
    pub fn set_default_account(&self, email: &str) {
        self.shared.lock().default_account = Some(email.to_owned());
    }

    /// Returns how many calls each endpoint received, by Google's method name
    /// (`users.messages.get`, `users.history.list`, `oauth.token`, ...),
    /// failed ones included.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counters.clone()
    }

    /// Returns one endpoint's call count.
    pub fn count(&self, endpoint: &str) -> u64 {
        self.shared
            .lock()
            .counters
            .get(endpoint)
            .copied()
            .unwrap_or_default()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.shared.lock().counters.clear();
    }

    /// Returns the parameters of the last authorization request.
    pub fn last_authorization(&self) -> Option<AuthorizationRequest> {
        self.shared.lock().last_authorization.clone()
    }

    /// Returns every grant made by a code exchange, oldest first.
    pub fn grants(&self) -> Vec<GrantInfo> {
        self.shared.lock().grants.clone()
    }
}

/// The `/_fake/...` routes.
pub(crate) fn routes() -> Router<FakeGoogleHandle> {
    Router::new()
        .route("/_fake/mailboxes/{email}", put(create_mailbox))
        .route(
            "/_fake/mailboxes/{email}/messages",
            post(add_message).get(list_ids),
        )
        .route(
            "/_fake/mailboxes/{email}/messages/{id}",
            delete(delete_message),
        )
        .route(
            "/_fake/mailboxes/{email}/expire-history",
            post(expire_history),
        )
        .route("/_fake/default-account", put(set_default_account))
        .route("/_fake/expire-access-tokens", post(expire_access_tokens))
        .route("/_fake/revoke", post(revoke))
        .route("/_fake/fail-next", post(fail_next))
        .route("/_fake/latency", put(set_latency))
        .route(
            "/_fake/deny-next-authorization",
            post(deny_next_authorization),
        )
        .route("/_fake/counters", get(counters).delete(reset_counters))
        .route("/_fake/last-authorization", get(last_authorization))
        .route("/_fake/grants", get(grants))
}

async fn create_mailbox(
    State(handle): State<FakeGoogleHandle>,
    Path(email): Path<String>,
) -> StatusCode {
    handle.ensure_mailbox(&email);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddMessage {
    /// The RFC 5322 message, base64url (padded or not).
    raw: String,
    #[serde(default)]
    label_ids: Vec<String>,
}

async fn add_message(
    State(handle): State<FakeGoogleHandle>,
    Path(email): Path<String>,
    Json(body): Json<AddMessage>,
) -> Response {
    let trimmed = body.raw.trim_end_matches('=');
    let Ok(raw) = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE.decode(&body.raw))
    else {
        return (StatusCode::BAD_REQUEST, "raw is not base64url").into_response();
    };
    let labels: Vec<&str> = body.label_ids.iter().map(String::as_str).collect();
    match handle.add_message_full(&email, raw, &labels) {
        Some(message) => Json(json!({
            "id": message.id,
            "threadId": message.thread_id,
            "historyId": message.history_id.to_string(),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "no such mailbox").into_response(),
    }
}

async fn list_ids(
    State(handle): State<FakeGoogleHandle>,
    Path(email): Path<String>,
) -> Json<serde_json::Value> {
    Json(
        json!({"ids": handle.message_ids(&email), "historyId": handle.history_id(&email).map(|id| id.to_string())}),
    )
}

async fn delete_message(
    State(handle): State<FakeGoogleHandle>,
    Path((email, id)): Path<(String, String)>,
) -> StatusCode {
    if handle.delete_message(&email, &id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn expire_history(
    State(handle): State<FakeGoogleHandle>,
    Path(email): Path<String>,
) -> StatusCode {
    handle.expire_history(&email);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Email {
    email: String,
}

async fn set_default_account(
    State(handle): State<FakeGoogleHandle>,
    Json(body): Json<Email>,
) -> StatusCode {
    handle.set_default_account(&body.email);
    StatusCode::NO_CONTENT
}

async fn expire_access_tokens(State(handle): State<FakeGoogleHandle>) -> StatusCode {
    handle.expire_access_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Revoke {
    refresh_token: Option<String>,
    email: Option<String>,
}

async fn revoke(
    State(handle): State<FakeGoogleHandle>,
    Json(body): Json<Revoke>,
) -> Json<serde_json::Value> {
    let mut revoked = 0;
    if let Some(token) = &body.refresh_token {
        revoked += usize::from(handle.revoke_refresh_token(token));
    }
    if let Some(email) = &body.email {
        revoked += handle.revoke_account(email);
    }
    Json(json!({"revoked": revoked}))
}

#[derive(Deserialize)]
struct FailNext {
    count: u32,
    #[serde(default = "default_fail_status")]
    status: u16,
}

fn default_fail_status() -> u16 {
    429
}

async fn fail_next(
    State(handle): State<FakeGoogleHandle>,
    Json(body): Json<FailNext>,
) -> StatusCode {
    handle.fail_next(body.count, body.status);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Latency {
    millis: u64,
}

async fn set_latency(
    State(handle): State<FakeGoogleHandle>,
    Json(body): Json<Latency>,
) -> StatusCode {
    handle.set_latency(Duration::from_millis(body.millis));
    StatusCode::NO_CONTENT
}

/// The middleware of the Gmail routes: waits the latency set, outside the
/// state's lock, then answers.
pub(crate) async fn delay(
    State(handle): State<FakeGoogleHandle>,
    request: Request,
    next: Next,
) -> Response {
    let latency = handle.shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    next.run(request).await
}

async fn deny_next_authorization(State(handle): State<FakeGoogleHandle>) -> StatusCode {
    handle.deny_next_authorization();
    StatusCode::NO_CONTENT
}

async fn counters(State(handle): State<FakeGoogleHandle>) -> Json<BTreeMap<String, u64>> {
    Json(handle.counters())
}

async fn reset_counters(State(handle): State<FakeGoogleHandle>) -> StatusCode {
    handle.reset_counters();
    StatusCode::NO_CONTENT
}

async fn last_authorization(
    State(handle): State<FakeGoogleHandle>,
) -> Json<Option<AuthorizationRequest>> {
    Json(handle.last_authorization())
}

async fn grants(State(handle): State<FakeGoogleHandle>) -> Json<Vec<GrantInfo>> {
    Json(handle.grants())
}
