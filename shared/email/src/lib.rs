//! Turns one raw RFC 5322 message (the bytes Gmail's `format=raw` returns)
//! into what pai stores and indexes, and classifies it.
//!
//! No database and no network: the mail-sync service fetches, this crate
//! reads. Every input either parses (possibly with [`ParsedEmail::warnings`]
//! and [`ParsedEmail::skipped_attachments`]) or fails with a readable
//! [`ParseError`]; nothing panics.

mod charset;
mod classify;
mod decode;
mod error;
mod html;
mod model;
mod parse;
mod parts;
mod rfc2047;
mod text;
mod vocab;

pub use classify::{Classification, ClassificationResult, UnknownClassification, classify};
pub use error::ParseError;
pub use model::{Address, Attachment, ClassifyHeaders, Limits, ParsedEmail, Skipped};
pub use parse::parse;
pub use rfc2047::decode as decode_encoded_words;
pub use text::searchable_text;
