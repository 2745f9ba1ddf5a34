//! Gmail v1's JSON as sent (testdata/gmail-api/README.md): camelCase keys,
//! `historyId` and `internalDate` as JSON strings, list keys left out when
//! empty. Kept apart from the public types so those stay plain Rust.

use serde::{Deserialize, Deserializer};

/// Google's error envelope: `{"error": {code, message, errors[{reason}], status}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorBody,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    pub email_address: String,
    #[serde(deserialize_with = "u64_from_string_or_number")]
    pub history_id: u64,
    #[serde(default)]
    pub messages_total: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageRef {
    pub id: String,
    pub thread_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListMessages {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawMessage {
    pub id: String,
    pub thread_id: String,
    #[serde(default)]
    pub label_ids: Vec<String>,
    #[serde(deserialize_with = "u64_from_string_or_number")]
    pub history_id: u64,
    #[serde(deserialize_with = "i64_from_string_or_number")]
    pub internal_date: i64,
    #[serde(default)]
    pub size_estimate: u64,
    pub raw: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListHistory {
    #[serde(default)]
    pub history: Vec<History>,
    #[serde(deserialize_with = "u64_from_string_or_number")]
    pub history_id: u64,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct History {
    #[serde(default)]
    pub messages_added: Vec<HistoryMessage>,
    #[serde(default)]
    pub messages_deleted: Vec<HistoryMessage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryMessage {
    pub message: MessageRef,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListLabels {
    #[serde(default)]
    pub labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Label {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Unsigned(u64),
    Signed(i64),
    Text(String),
}

fn u64_from_string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Unsigned(value) => Ok(value),
        NumberOrString::Signed(value) => u64::try_from(value).map_err(serde::de::Error::custom),
        NumberOrString::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn i64_from_string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Unsigned(value) => i64::try_from(value).map_err(serde::de::Error::custom),
        NumberOrString::Signed(value) => Ok(value),
        NumberOrString::Text(text) => text.trim().parse().map_err(serde::de::Error::custom),
    }
}
