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
pub use error::{ErrorCode, ServiceError};
pub use identity::{JwtKeys, UserContext};
