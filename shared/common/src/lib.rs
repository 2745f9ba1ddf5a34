//! What every pai service shares: configuration, telemetry, the error table,
//! identity and gRPC plumbing; with feature `db` the database pool and
//! migrations, with `amqp` messaging (the outbox relay, event consumers).

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod page;
pub mod revocation;
pub mod shards;
pub mod telemetry;
pub mod time;
pub mod trace_context;

pub use config::{ConfigError, Env};
pub use error::{ErrorCode, ServiceError};
pub use identity::{JwtKeys, UserContext};
