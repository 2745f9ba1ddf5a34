//! JSON request and response bodies of the REST API, and their mapping
//! from the protobuf messages.

use chrono::{DateTime, TimeZone, Utc};
use pai_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod mail;
pub use mail::{Email, EmailPage, EmailThread, GmailConnect, MailAccount, MailAccounts};

use pai_common::time::from_proto as time;

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub is_active: bool,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::User> for User {
    fn from(u: pb::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            username: u.username,
            display_name: u.display_name,
            is_admin: u.is_admin,
            is_active: u.is_active,
            created_at: time(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Absent in cookie mode (`X-Pai-Token-Mode: cookie`), where it is set
    /// in the HttpOnly cookie `pai_refresh_<user_id>` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Cookie mode only: the value of the `pai_csrf` cookie, to send back in
    /// `X-CSRF-Token` on cookie-authenticated requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u32,
    pub user: Option<User>,
}

impl From<pb::TokenResponse> for TokenResponse {
    fn from(t: pb::TokenResponse) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: Some(t.refresh_token),
            csrf_token: None,
            token_type: t.token_type,
            expires_in: t.expires_in,
            user: t.user.map(User::from),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: String,
}

/// Give `email` or `username` (or `login`, either of them).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub login: Option<String>,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
/// Give `refresh_token`; in cookie mode leave it out (or send no body) and
/// the token comes from the cookie of `user_id` (default: the current
/// account), with `X-CSRF-Token`.
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SwitchRequest {
    pub user_id: String,
}

/// An account this browser holds a refresh cookie for.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrowserAccount {
    pub user_id: String,
    /// Whether it is the account of `pai_current`.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrowserAccounts {
    pub accounts: Vec<BrowserAccount>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReactivateRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub id: String,
    pub user_agent: String,
    pub ip: String,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

impl From<pb::Session> for Session {
    fn from(s: pb::Session) -> Self {
        Self {
            id: s.id,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: time(s.created_at),
            last_used_at: time(s.last_used_at),
            expires_at: time(s.expires_at),
            current: s.current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    pub revoked: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub user_id: String,
    pub session_id: String,
    pub is_admin: bool,
    pub issuer: String,
    pub audience: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordConfirmation {
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStatus {
    /// `active`, `deactivated` or `locked`.
    pub status: String,
    pub locked_until: Option<DateTime<Utc>>,
}

impl From<pb::AccountStatusResponse> for AccountStatus {
    fn from(s: pb::AccountStatusResponse) -> Self {
        Self {
            status: s.status,
            locked_until: time(s.locked_until),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub fn unix_time(secs: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(i64::try_from(secs).ok()?, 0).single()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub filename: String,
    /// `financial`, `long_form` or `generic` once classified.
    pub category: Option<String>,
    /// `queued`, `processing`, `indexed` or `failed`.
    pub status: String,
    /// Why ingest failed, in words a user can read.
    pub error: Option<String>,
    pub pages: u32,
    pub chunks: u32,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<pb::Document> for Document {
    fn from(d: pb::Document) -> Self {
        Self {
            id: d.id,
            title: d.title,
            filename: d.filename,
            category: Some(d.category).filter(|c| !c.is_empty()),
            status: d.status,
            error: Some(d.error).filter(|e| !e.is_empty()),
            pages: d.pages,
            chunks: d.chunks,
            bytes: d.bytes,
            sha256: d.sha256,
            created_at: time(d.created_at),
            updated_at: time(d.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPage {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

/// Where a hit comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitSource {
    /// `document` or `email`.
    pub kind: String,
    pub id: String,
    pub title: String,
    /// 1-based page of a document.
    pub page: u32,
    pub category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub text: String,
    /// The best passage, query terms wrapped in `<b></b>`.
    pub snippet: String,
    pub score: f32,
    pub source: HitSource,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    pub took_ms: f32,
}

impl From<pb::SearchResponse> for SearchResults {
    fn from(r: pb::SearchResponse) -> Self {
        Self {
            hits: r
                .hits
                .into_iter()
                .map(|h| SearchHit {
                    text: h.text,
                    snippet: h.snippet,
                    score: h.score,
                    source: HitSource {
                        kind: h.source_kind,
                        id: h.source_id,
                        title: h.title,
                        page: h.page,
                        category: Some(h.category).filter(|c| !c.is_empty()),
                    },
                })
                .collect(),
            took_ms: r.took_ms,
        }
    }
}

/// `POST /api/queries`: a question about the caller's own data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AskBody {
    /// The question, 1 to 1,000 characters.
    pub query: String,
    /// Passages retrieved to answer from, 1 to 20 (default 8).
    #[schema(minimum = 1, maximum = 20)]
    pub k: Option<u32>,
    /// Only passages of this kind: `document` or `email`.
    pub source: Option<String>,
    /// Only passages of this category (`financial`, `long_form`, `generic`).
    pub category: Option<String>,
    /// Only passages of these documents, at most 100.
    pub document_ids: Option<Vec<uuid::Uuid>>,
    /// The most tokens to generate (default and cap: the server's `ASK_MAX_TOKENS`).
    pub max_tokens: Option<u32>,
}

/// A passage the answer was built from; `[n]` in the answer refers to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnswerSource {
    /// The number the context gave it, from 1.
    pub n: u32,
    /// `document` or `email`.
    pub source_kind: String,
    pub source_id: String,
    pub title: String,
    /// 1-based page of a document.
    pub page: u32,
    /// The passage the model read.
    pub snippet: String,
    /// The search score of the passage.
    pub score: f32,
    /// Whether the answer cites it.
    pub cited: bool,
}

impl From<pb::AnswerSource> for AnswerSource {
    fn from(s: pb::AnswerSource) -> Self {
        Self {
            n: s.n,
            source_kind: s.source_kind,
            source_id: s.source_id,
            title: s.title,
            page: s.page,
            snippet: s.snippet,
            score: s.score,
            cited: s.cited,
        }
    }
}

/// Where an answer's time went, and how fast the model ran.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AskTimings {
    /// Milliseconds waited in the queue for the model.
    pub queue_ms: f32,
    /// Milliseconds the search for passages took.
    pub retrieval_ms: f32,
    /// Milliseconds from arrival to the answer's first token.
    pub first_token_ms: f32,
    pub total_ms: f32,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub prompt_tokens_per_s: f32,
    pub generation_tokens_per_s: f32,
    /// Prompt tokens whose computation was reused from a shared prefix.
    pub cached_prompt_tokens: u32,
}

impl From<pb::AskTimings> for AskTimings {
    fn from(t: pb::AskTimings) -> Self {
        Self {
            queue_ms: t.queue_ms,
            retrieval_ms: t.retrieval_ms,
            first_token_ms: t.first_token_ms,
            total_ms: t.total_ms,
            prompt_tokens: t.prompt_tokens,
            generated_tokens: t.generated_tokens,
            prompt_tokens_per_s: t.prompt_tokens_per_s,
            generation_tokens_per_s: t.generation_tokens_per_s,
            cached_prompt_tokens: t.cached_prompt_tokens,
        }
    }
}

/// A question, its answer and the passages it was built from.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryRecord {
    pub id: String,
    pub query: String,
    /// The answer; `[n]` refers to `sources[n - 1]`.
    pub response: String,
    pub sources: Vec<AnswerSource>,
    /// The model's file name; empty when the model was not called.
    pub model: String,
    /// `running` (still being generated), `answered`, `not_found` (the data
    /// does not say; the model was not called), `cancelled` or `failed`.
    pub status: String,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    pub timings: AskTimings,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::QueryRecord> for QueryRecord {
    fn from(q: pb::QueryRecord) -> Self {
        Self {
            id: q.id,
            query: q.query,
            response: q.response,
            sources: q.sources.into_iter().map(Into::into).collect(),
            model: q.model,
            status: q.status,
            error: Some(q.error).filter(|e| !e.is_empty()),
            timings: q.timings.map(Into::into).unwrap_or_default(),
            created_at: time(q.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryPage {
    /// Newest first.
    pub queries: Vec<QueryRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The data of the `started` server-sent event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskStarted {
    /// The id the finished record will have.
    pub query_id: String,
    /// Milliseconds waited in the queue for the model.
    pub queue_ms: f32,
}

/// The data of a `delta` server-sent event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskDelta {
    /// The next piece of the answer's text.
    pub text: String,
}
