//! Gmail v1: profile, messages.list/get, attachments.get, history.list and
//! labels.list, at Google's paths and in Google's JSON shapes.

use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::headers;
use crate::mailbox::{HistoryKind, Mailbox, StoredMessage};
use crate::mime::{self, Part};
use crate::state::{Inner, Shared};

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 500;

/// What the caller's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// readonly, modify or full mail scope: every format.
    Full,
    /// gmail.metadata: no `raw` or `full` bodies.
    Metadata,
}

/// A call that passed injection and authentication: the locked state and
/// the mailbox the token grants.
struct Authorized<'a> {
    inner: MutexGuard<'a, Inner>,
    email: String,
    access: Access,
}

impl Authorized<'_> {
    fn mailbox(&self) -> Result<&Mailbox, ApiError> {
        self.inner
            .mailboxes
            .get(&self.email)
            .ok_or(ApiError::NotFound)
    }
}

/// Counts the call, applies an injected failure, then checks the bearer
/// token and that `user_id` is `me` or the token's own address.
fn authorize<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    user_id: &str,
    endpoint: &str,
) -> Result<Authorized<'a>, ApiError> {
    let mut inner = shared.lock();
    inner.count(endpoint);
    if inner.pass_first > 0 {
        inner.pass_first -= 1;
    } else if inner.fail_next > 0 {
        inner.fail_next -= 1;
        return Err(match inner.fail_status {
            503 => ApiError::Unavailable,
            _ => ApiError::RateLimited,
        });
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    let access_token = inner
        .access_tokens
        .get(token.trim())
        .ok_or(ApiError::Unauthenticated)?;
    if access_token.expires_at <= Instant::now() {
        return Err(ApiError::Unauthenticated);
    }
    let grant = &inner.grants[access_token.grant];
    if grant.revoked {
        return Err(ApiError::Unauthenticated);
    }
    let scopes: Vec<&str> = grant.scope.split_whitespace().collect();
    let has = |name: &str| scopes.iter().any(|scope| scope.ends_with(name));
    let access = if has("gmail.readonly")
        || has("gmail.modify")
        || scopes.contains(&"https://mail.google.com/")
    {
        Access::Full
    } else if has("gmail.metadata") {
        Access::Metadata
    } else {
        return Err(ApiError::InsufficientScope);
    };
    let email = grant.email.clone();
    if user_id != "me" && user_id != email {
        return Err(ApiError::DelegationDenied);
    }
    Ok(Authorized {
        inner,
        email,
        access,
    })
}

fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .collect()
}

fn page_size(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    match first(pairs, "maxResults") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Ok(DEFAULT_PAGE),
            Ok(size) => Ok(size.min(MAX_PAGE)),
            Err(_) => Err(ApiError::InvalidArgument("Invalid value for maxResults")),
        },
    }
}

/// `GET /gmail/v1/users/{userId}/profile`.
#[tracing::instrument(skip_all)]
pub(crate) async fn profile(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = authorize(&shared, &headers, &user_id, "users.getProfile")?;
    let mailbox = call.mailbox()?;
    Ok(Json(json!({
        "emailAddress": call.email,
        "messagesTotal": mailbox.len(),
        "threadsTotal": mailbox.thread_count(),
        "historyId": mailbox.history_id().to_string(),
    }))
    .into_response())
}

/// `GET /gmail/v1/users/{userId}/messages`: newest first, paged.
#[tracing::instrument(skip_all)]
pub(crate) async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let call = authorize(&shared, &headers, &user_id, "users.messages.list")?;
    let pairs = query_pairs(query);
    let size = page_size(&pairs)?;
    let label_ids = all(&pairs, "labelIds");
    let include_spam_trash = first(&pairs, "includeSpamTrash") == Some("true");
    let after = match first(&pairs, "pageToken") {
        Some(token) => Some(decode_list_token(token)?),
        None => None,
    };
    let matching: Vec<&StoredMessage> = call
        .mailbox()?
        .newest_first()
        .into_iter()
        .filter(|message| {
            label_ids
                .iter()
                .all(|label| message.label_ids.iter().any(|own| own == label))
        })
        .filter(|message| {
            include_spam_trash
                || !message
                    .label_ids
                    .iter()
                    .any(|label| label == "SPAM" || label == "TRASH")
        })
        .collect();
    let total = matching.len();
    let remaining: Vec<&StoredMessage> = matching
        .into_iter()
        .filter(|message| match &after {
            // Newest first: the next page holds what sorts after the cursor.
            Some((date, id)) => (message.internal_date, &message.id) < (*date, id),
            None => true,
        })
        .collect();
    let page = &remaining[..remaining.len().min(size)];
    let mut answer = json!({"resultSizeEstimate": total});
    if !page.is_empty() {
        answer["messages"] = page
            .iter()
            .map(|message| json!({"id": message.id, "threadId": message.thread_id}))
            .collect();
    }
    if remaining.len() > page.len()
        && let Some(last) = page.last()
    {
        answer["nextPageToken"] =
            json!(URL_SAFE_NO_PAD.encode(format!("{}:{}", last.internal_date, last.id)));
    }
    Ok(Json(answer).into_response())
}

fn decode_list_token(token: &str) -> Result<(i64, String), ApiError> {
    let invalid = ApiError::InvalidArgument("Invalid pageToken");
    let text = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(invalid)?;
    let (date, id) = text.split_once(':').ok_or(invalid)?;
    Ok((date.parse().map_err(|_| invalid)?, id.to_owned()))
}

/// `GET /gmail/v1/users/{userId}/messages/{id}`: `format` raw, minimal,
/// metadata or full (default).
#[tracing::instrument(skip_all)]
pub(crate) async fn get_message(
    State(shared): State<Arc<Shared>>,
    Path((user_id, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let call = authorize(&shared, &headers, &user_id, "users.messages.get")?;
    let pairs = query_pairs(query);
    let format = first(&pairs, "format").unwrap_or("full");
    let message = call.mailbox()?.get(&id).ok_or(ApiError::NotFound)?;
    let mut answer = json!({
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": message.label_ids,
        "snippet": message.snippet,
        "sizeEstimate": message.raw.len(),
        "historyId": message.history_id.to_string(),
        "internalDate": message.internal_date.to_string(),
    });
    match format {
        "minimal" => {}
        "raw" => {
            if call.access == Access::Metadata {
                return Err(ApiError::InsufficientScope);
            }
            answer["raw"] = json!(URL_SAFE.encode(&message.raw));
        }
        "metadata" => {
            let wanted = all(&pairs, "metadataHeaders");
            answer["payload"] = metadata_payload(message, &wanted);
        }
        "full" => {
            if call.access == Access::Metadata {
                return Err(ApiError::InsufficientScope);
            }
            answer["payload"] = Part::parse(&message.raw).to_json(&message.id);
        }
        _ => return Err(ApiError::InvalidArgument("Invalid value for format")),
    }
    Ok(Json(answer).into_response())
}

/// The top-level part with headers only, as `format=metadata` answers.
fn metadata_payload(message: &StoredMessage, wanted: &[&str]) -> Value {
    let fields = headers::header_fields(&message.raw);
    let mime_type = headers::header(&fields, "Content-Type")
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "text/plain".to_owned());
    let headers: Vec<Value> = fields
        .iter()
        .filter(|(name, _)| {
            wanted.is_empty() || wanted.iter().any(|want| want.eq_ignore_ascii_case(name))
        })
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    json!({"partId": "", "mimeType": mime_type, "filename": "", "headers": headers, "body": {"size": 0}})
}

/// `GET /gmail/v1/users/{userId}/messages/{messageId}/attachments/{id}`:
/// `{size, data}` of a part named by an `attachmentId` from `format=full`.
#[tracing::instrument(skip_all)]
pub(crate) async fn get_attachment(
    State(shared): State<Arc<Shared>>,
    Path((user_id, message_id, attachment_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = authorize(
        &shared,
        &headers,
        &user_id,
        "users.messages.attachments.get",
    )?;
    if call.access == Access::Metadata {
        return Err(ApiError::InsufficientScope);
    }
    let message = call.mailbox()?.get(&message_id).ok_or(ApiError::NotFound)?;
    let (owner, part_id) = mime::parse_attachment_id(&attachment_id)
        .ok_or(ApiError::InvalidArgument("Invalid attachment token"))?;
    if owner != message.id {
        return Err(ApiError::InvalidArgument("Invalid attachment token"));
    }
    let tree = Part::parse(&message.raw);
    let part = tree
        .find(&part_id)
        .filter(|part| part.parts.is_empty())
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!({"size": part.body.len(), "data": URL_SAFE.encode(&part.body)})).into_response())
}

/// `GET /gmail/v1/users/{userId}/history`.
#[tracing::instrument(skip_all)]
pub(crate) async fn list_history(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let call = authorize(&shared, &headers, &user_id, "users.history.list")?;
    let pairs = query_pairs(query);
    let size = page_size(&pairs)?;
    let start: u64 = first(&pairs, "startHistoryId")
        .ok_or(ApiError::InvalidArgument(
            "Missing required parameter: startHistoryId",
        ))?
        .parse()
        .map_err(|_| ApiError::InvalidArgument("Invalid value for startHistoryId"))?;
    let types = all(&pairs, "historyTypes");
    for kind in &types {
        if !matches!(
            *kind,
            "messageAdded" | "messageDeleted" | "labelAdded" | "labelRemoved"
        ) {
            return Err(ApiError::InvalidArgument("Invalid value for historyTypes"));
        }
    }
    let label = first(&pairs, "labelId");
    let after = match first(&pairs, "pageToken") {
        Some(token) => token
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidArgument("Invalid pageToken"))?,
        None => start,
    };
    let mailbox = call.mailbox()?;
    if start < mailbox.history_floor() {
        return Err(ApiError::NotFound);
    }
    let wanted = |kind: HistoryKind| {
        let name = match kind {
            HistoryKind::MessageAdded => "messageAdded",
            HistoryKind::MessageDeleted => "messageDeleted",
        };
        types.is_empty() || types.contains(&name)
    };
    let records: Vec<_> = mailbox
        .history_after(after)
        .filter(|record| wanted(record.kind))
        .filter(|record| label.is_none_or(|label| record.label_ids.iter().any(|own| own == label)))
        .collect();
    let page = &records[..records.len().min(size)];
    let mut answer = json!({"historyId": mailbox.history_id().to_string()});
    if !page.is_empty() {
        answer["history"] = page
            .iter()
            .map(|record| {
                let short = json!({"id": record.message_id, "threadId": record.thread_id});
                let long = json!({"message": {"id": record.message_id, "threadId": record.thread_id, "labelIds": record.label_ids}});
                let key = match record.kind {
                    HistoryKind::MessageAdded => "messagesAdded",
                    HistoryKind::MessageDeleted => "messagesDeleted",
                };
                json!({"id": record.id.to_string(), "messages": [short], key: [long]})
            })
            .collect();
    }
    if records.len() > page.len()
        && let Some(last) = page.last()
    {
        answer["nextPageToken"] = json!(last.id.to_string());
    }
    Ok(Json(answer).into_response())
}

/// `GET /gmail/v1/users/{userId}/labels`.
#[tracing::instrument(skip_all)]
pub(crate) async fn list_labels(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = authorize(&shared, &headers, &user_id, "users.labels.list")?;
    Ok(Json(json!({"labels": call.mailbox()?.labels()})).into_response())
}
