//! Why a message could not be read at all.

/// Returned only when nothing usable can be read; everything short of that is
/// a warning or a skipped attachment on [`crate::ParsedEmail`], so one odd
/// message never stops a sync.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has no header fields (not an RFC 5322 message)")]
    NoHeaders,
    #[error("the MIME structure could not be read")]
    Unreadable,
}
