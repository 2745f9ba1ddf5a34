//! Text extraction, classification and chunking of PDF documents.
//!
//! The documents worker runs [`extract_isolated`] (which starts
//! `pai extract FILE`, whose body is [`child_main`]), then [`classify`] and
//! [`chunk`] on the pages it gets back. Page numbers travel with every chunk
//! so that search results and answers can cite them.
#![forbid(unsafe_code)]

mod chunk;
mod classify;
mod error;
mod isolate;
mod pdf;
mod quotes;
mod recover;

pub use chunk::{Chunk, DEFAULT_OVERLAP_WORDS, DEFAULT_TARGET_WORDS, chunk};
pub use classify::{Category, ParseCategoryError, classify};
pub use error::ExtractError;
pub use isolate::{Limits, child_main, extract_isolated};
pub use pdf::{Page, extract_pages};
