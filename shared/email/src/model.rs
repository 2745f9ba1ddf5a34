//! The parsed form of one message: what mail-sync stores and indexes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Size limits applied while parsing, so one huge message cannot blow up
/// memory or the search index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// An attachment larger than this is skipped (recorded in
    /// [`ParsedEmail::skipped_attachments`]); the message still parses.
    pub max_attachment_bytes: usize,
    /// The body text is cut at this many bytes (on a char boundary) with a
    /// warning.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    /// 20 MiB attachments (the limit, Gmail's own is 25 MB) and 1 MiB of
    /// text, far above any real message body but bounded for the indexer.
    fn default() -> Self {
        Self {
            max_attachment_bytes: 20 * 1024 * 1024,
            max_text_bytes: 1024 * 1024,
        }
    }
}

/// One mailbox: display name (RFC 2047 decoded) and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

/// An attachment kept with its decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The decoded file name, or `attachment-N` when the part names none.
    pub filename: String,
    /// `type/subtype`, lowercase (`application/octet-stream` when missing).
    pub content_type: String,
    /// Decoded size in bytes (equal to `data.len()`).
    pub size: usize,
    pub data: Vec<u8>,
}

/// An attachment that was not kept, and why (shown to the user and logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub filename: String,
    pub reason: String,
}

/// Header fields that only classification needs, unfolded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassifyHeaders {
    pub list_id: Option<String>,
    pub list_unsubscribe: Option<String>,
    pub list_post: Option<String>,
    pub precedence: Option<String>,
    pub auto_submitted: Option<String>,
    pub x_mailer: Option<String>,
    pub x_spam_flag: Option<String>,
    pub x_spam_status: Option<String>,
    /// `type/subtype` of the top-level part, lowercase.
    pub content_type: String,
    /// True when the body came from HTML (no text/plain part).
    pub html_only: bool,
}

/// One message as pai stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedEmail {
    /// Message-ID without the angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    /// References, oldest first, without angle brackets.
    pub references: Vec<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub reply_to: Vec<Address>,
    /// RFC 2047 decoded; empty when the message has none.
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// The plain-text body (HTML converted when there is no plain part).
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub skipped_attachments: Vec<Skipped>,
    pub headers: ClassifyHeaders,
    /// Things read with a fallback (unknown charset, truncated text, ...).
    pub warnings: Vec<String>,
}
