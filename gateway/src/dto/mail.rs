//! Mail shapes of the REST API (`/api/gmail/*`, `/api/mail/*`, `/api/emails*`).

use chrono::{DateTime, Utc};
use pai_proto::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;

use super::time;

#[derive(Debug, Serialize, ToSchema)]
pub struct GmailConnect {
    /// Send the browser here: Google's consent page.
    pub authorization_url: String,
    /// The link stops working then.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailAccount {
    pub id: String,
    pub email_address: String,
    /// `gmail`.
    pub provider: String,
    /// `active`, `syncing`, `reauth_required` (connect it again) or `error`.
    pub state: String,
    /// Messages stored.
    pub messages: u64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::MailAccount> for MailAccount {
    fn from(a: pb::MailAccount) -> Self {
        Self {
            id: a.id,
            email_address: a.email_address,
            provider: a.provider,
            state: a.state,
            messages: a.messages,
            last_sync_at: time(a.last_sync_at),
            last_error: Some(a.last_error).filter(|e| !e.is_empty()),
            created_at: time(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailAccounts {
    pub accounts: Vec<MailAccount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailAddress {
    pub name: Option<String>,
    pub email: String,
}

impl From<pb::EmailAddress> for EmailAddress {
    fn from(a: pb::EmailAddress) -> Self {
        Self {
            name: Some(a.name).filter(|n| !n.is_empty()),
            email: a.email,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailAttachment {
    pub id: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// `stored`, `indexed`, `skipped` or `failed`.
    pub status: String,
    /// Why it was skipped or failed.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Email {
    pub id: String,
    pub account_id: String,
    pub thread_id: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: Option<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// Gmail's label ids.
    pub labels: Vec<String>,
    /// `personal`, `work`, `financial`, `newsletter`, `notification` or `spam`.
    pub classification: String,
    /// The text (HTML converted); absent in lists.
    pub text: Option<String>,
    pub snippet: String,
    pub attachments: Vec<EmailAttachment>,
}

impl From<pb::Email> for Email {
    fn from(e: pb::Email) -> Self {
        Self {
            id: e.id,
            account_id: e.account_id,
            thread_id: e.thread_id,
            message_id: Some(e.message_id).filter(|m| !m.is_empty()),
            in_reply_to: Some(e.in_reply_to).filter(|m| !m.is_empty()),
            references: e.references,
            from: e
                .from
                .map(Into::into)
                .filter(|a: &EmailAddress| !a.email.is_empty()),
            to: e.to.into_iter().map(Into::into).collect(),
            cc: e.cc.into_iter().map(Into::into).collect(),
            subject: e.subject,
            date: time(e.date),
            labels: e.labels,
            classification: e.classification,
            text: Some(e.text).filter(|t| !t.is_empty()),
            snippet: e.snippet,
            attachments: e
                .attachments
                .into_iter()
                .map(|a| EmailAttachment {
                    id: a.id,
                    filename: a.filename,
                    content_type: a.content_type,
                    size: a.size,
                    status: a.status,
                    error: Some(a.error).filter(|e| !e.is_empty()),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailPage {
    pub emails: Vec<Email>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailThread {
    pub id: String,
    pub subject: String,
    /// Oldest first.
    pub emails: Vec<Email>,
}
