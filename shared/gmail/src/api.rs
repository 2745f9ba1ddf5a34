//! The Gmail v1 calls a sync needs, each taking the caller's access token
//! (borrowed or owned, so `Session::call(|token| client.profile(token))`
//! needs no `async move` block):
//! the profile (address and current history id), the message list, one
//! message as raw RFC 5322 bytes, history since a history id, and labels.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::de::DeserializeOwned;

pub use crate::error::GmailError;
use crate::wire;

/// The largest page `messages.list` and `history.list` give.
const MAX_PAGE: u32 = 500;

/// A mailbox's address and where its history stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email_address: String,
    /// Start incremental syncs here after a full sync.
    pub history_id: u64,
    pub messages_total: u64,
}

/// A message as lists name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageRef {
    pub id: String,
    pub thread_id: String,
}

/// One page of `messages.list`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    pub messages: Vec<MessageRef>,
    /// Pass back for the next page; `None` on the last.
    pub next_page_token: Option<String>,
}

/// A message with its exact bytes (`format=raw`).
#[derive(Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub id: String,
    pub thread_id: String,
    pub label_ids: Vec<String>,
    pub history_id: u64,
    /// When Gmail received the message (epoch milliseconds on the wire).
    pub internal_date: DateTime<Utc>,
    pub size_estimate: u64,
    /// The RFC 5322 message, decoded from base64url.
    pub raw: Vec<u8>,
}

/// The bytes are left out: they may be megabytes.
impl std::fmt::Debug for RawMessage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RawMessage")
            .field("id", &self.id)
            .field("thread_id", &self.thread_id)
            .field("label_ids", &self.label_ids)
            .field("history_id", &self.history_id)
            .field("internal_date", &self.internal_date)
            .field("size_estimate", &self.size_estimate)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// One page of history: what was added and deleted since the start id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Each message once, in history order. A message added then deleted in
    /// the same span appears here and in `deleted`: apply deletions last.
    pub added: Vec<MessageRef>,
    /// Ids of deleted messages, each once.
    pub deleted: Vec<String>,
    /// The mailbox's current history id: store it once the last page is done.
    pub history_id: u64,
    pub next_page_token: Option<String>,
}

/// Whether a label is Gmail's own (`INBOX`, `UNREAD`, ...) or the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelKind {
    System,
    User,
    /// A `type` this crate does not know, or none.
    Other,
}

/// A label: user label ids (`Label_...`) are opaque, the name is what to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: String,
    pub name: String,
    pub kind: LabelKind,
}

/// A Gmail v1 client for any account: the token picks the mailbox (`me`).
#[derive(Debug, Clone)]
pub struct GmailClient {
    http: reqwest::Client,
    base: Url,
}

impl GmailClient {
    /// Returns a client for the API at `api_base_url` (Google's:
    /// `https://gmail.googleapis.com`); the discovery document's paths
    /// `/gmail/v1/users/me/...` are appended to it.
    pub fn new(http: reqwest::Client, api_base_url: &str) -> Result<Self, GmailError> {
        let base = Url::parse(api_base_url)
            .map_err(|error| GmailError::InvalidUrl(format!("{api_base_url}: {error}")))?;
        if base.cannot_be_a_base() {
            return Err(GmailError::InvalidUrl(api_base_url.to_owned()));
        }
        Ok(Self { http, base })
    }

    /// Returns the mailbox's address, current history id and message count.
    pub async fn profile(&self, access_token: impl AsRef<str>) -> Result<Profile, GmailError> {
        let profile: wire::Profile = self.get(access_token.as_ref(), &["profile"], &[]).await?;
        Ok(Profile {
            email_address: profile.email_address,
            history_id: profile.history_id,
            messages_total: profile.messages_total,
        })
    }

    /// Returns one page of message ids, newest first, spam and trash left
    /// out; `max_results` is capped at Gmail's 500.
    pub async fn list_messages(
        &self,
        access_token: impl AsRef<str>,
        page_token: Option<&str>,
        max_results: u32,
    ) -> Result<MessagePage, GmailError> {
        let max_results = max_results.clamp(1, MAX_PAGE).to_string();
        let mut query = vec![("maxResults", max_results.as_str())];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let page: wire::ListMessages = self
            .get(access_token.as_ref(), &["messages"], &query)
            .await?;
        Ok(MessagePage {
            messages: page.messages.into_iter().map(message_ref).collect(),
            next_page_token: page.next_page_token.filter(|token| !token.is_empty()),
        })
    }

    /// Returns a message's exact bytes and metadata.
    pub async fn get_raw(
        &self,
        access_token: impl AsRef<str>,
        id: &str,
    ) -> Result<RawMessage, GmailError> {
        let message: wire::RawMessage = self
            .get(
                access_token.as_ref(),
                &["messages", id],
                &[("format", "raw")],
            )
            .await?;
        let raw = decode_base64url(&message.raw)?;
        let internal_date = DateTime::from_timestamp_millis(message.internal_date)
            .ok_or_else(|| GmailError::Decode(format!("internalDate {}", message.internal_date)))?;
        Ok(RawMessage {
            id: message.id,
            thread_id: message.thread_id,
            label_ids: message.label_ids,
            history_id: message.history_id,
            internal_date,
            size_estimate: message.size_estimate,
            raw,
        })
    }

    /// Returns one page of message additions and deletions after
    /// `start_history_id`. `NotFound` means the id is too old: do a full sync.
    pub async fn history(
        &self,
        access_token: impl AsRef<str>,
        start_history_id: u64,
        page_token: Option<&str>,
    ) -> Result<HistoryPage, GmailError> {
        let start = start_history_id.to_string();
        let max_results = MAX_PAGE.to_string();
        let mut query = vec![
            ("startHistoryId", start.as_str()),
            ("historyTypes", "messageAdded"),
            ("historyTypes", "messageDeleted"),
            ("maxResults", max_results.as_str()),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        let page: wire::ListHistory = self
            .get(access_token.as_ref(), &["history"], &query)
            .await?;
        let mut added: Vec<MessageRef> = Vec::new();
        let mut deleted: Vec<String> = Vec::new();
        for record in page.history {
            for entry in record.messages_added {
                if !added.iter().any(|known| known.id == entry.message.id) {
                    added.push(message_ref(entry.message));
                }
            }
            for entry in record.messages_deleted {
                if !deleted.contains(&entry.message.id) {
                    deleted.push(entry.message.id);
                }
            }
        }
        Ok(HistoryPage {
            added,
            deleted,
            history_id: page.history_id,
            next_page_token: page.next_page_token.filter(|token| !token.is_empty()),
        })
    }

    /// Returns the mailbox's labels, system and user.
    pub async fn labels(&self, access_token: impl AsRef<str>) -> Result<Vec<Label>, GmailError> {
        let list: wire::ListLabels = self.get(access_token.as_ref(), &["labels"], &[]).await?;
        Ok(list
            .labels
            .into_iter()
            .map(|label| Label {
                id: label.id,
                name: label.name,
                kind: match label.kind.as_deref() {
                    Some("system") => LabelKind::System,
                    Some("user") => LabelKind::User,
                    _ => LabelKind::Other,
                },
            })
            .collect())
    }

    /// GETs `/gmail/v1/users/me/{path}` with the token and decodes the JSON
    /// answer, or sorts the failure into a [`GmailError`].
    async fn get<T: DeserializeOwned>(
        &self,
        access_token: &str,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, GmailError> {
        let url = self.url(path)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .query(query)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(GmailError::Transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(GmailError::Transport)?;
        if !status.is_success() {
            return Err(GmailError::from_response(status, &headers, &body));
        }
        serde_json::from_slice(&body).map_err(|error| GmailError::Decode(error.to_string()))
    }

    /// Builds the URL segment by segment, so an id can never add a path or a
    /// query of its own.
    fn url(&self, path: &[&str]) -> Result<Url, GmailError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| GmailError::InvalidUrl(self.base.to_string()))?
            .pop_if_empty()
            .extend(["gmail", "v1", "users", "me"])
            .extend(path);
        Ok(url)
    }
}

/// A generous bound on one call: a raw message can be 25 MB+ of base64.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn message_ref(message: wire::MessageRef) -> MessageRef {
    MessageRef {
        id: message.id,
        thread_id: message.thread_id,
    }
}

/// Decodes base64url with or without `=` padding (Gmail pads; the
/// discovery document does not promise it).
fn decode_base64url(text: &str) -> Result<Vec<u8>, GmailError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|error| GmailError::Decode(format!("raw is not base64url: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_padded_and_unpadded() {
        assert_eq!(decode_base64url("aGk-Pz8_").expect("unpadded"), b"hi>???");
        assert_eq!(decode_base64url("aGk=").expect("padded"), b"hi");
        assert_eq!(decode_base64url("aGk").expect("unpadded"), b"hi");
        assert!(decode_base64url("a+b/").is_err());
    }

    #[test]
    fn ids_stay_one_path_segment() {
        let client = GmailClient::new(reqwest::Client::new(), "http://127.0.0.1:1/").expect("url");
        let url = client.url(&["messages", "a/../b?c"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/gmail/v1/users/me/messages/a%2F..%2Fb%3Fc"
        );
    }
}
