//! End-to-end tests of pai through the REST gateway (and gRPC directly),
//! against the real PostgreSQL and RabbitMQ. One binary, a module per feature.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly where it stands"
)]

#[allow(
    dead_code,
    reason = "each test module uses a different part of the helpers"
)]
mod helpers;

mod accounts;
mod admin;
mod ask;
mod backup;
mod bad_input;
mod browser_sessions;
mod concurrency;
mod corpus;
mod deletion;
mod documents;
mod erasure;
mod events;
mod grpc_direct;
mod import;
mod isolation_property;
mod limits;
mod lockout;
mod mail;
mod mail_restart;
mod open_indexes;
mod ops;
mod readiness;
mod revocation;
mod sessions;
mod shards;
mod tls;
mod tokens;
mod traces;
mod uploads;
mod web_app;
