//! What every pai service shares: configuration, telemetry, the error table,
//! the database pool and migrations, identity, and messaging.

pub mod amqp;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod revocation;
pub mod telemetry;

pub use config::{ConfigError, Env};

/// Histogram of ingest stages (`stage`: extract, embed, store, index,
/// index_call), exported by the gateway's `/metrics` when in one process.
pub const INGEST_STAGE_SECONDS: &str = "pai_ingest_stage_seconds";
/// Histogram of search stages (`stage`: embed, bm25 (with the
/// snippet generator), vector, hydrate, render; embed overlaps bm25 and the
/// first hydrate).
pub const SEARCH_STAGE_SECONDS: &str = "pai_search_stage_seconds";
pub use error::{ErrorCode, ServiceError};
pub use identity::{JwtKeys, UserContext};
