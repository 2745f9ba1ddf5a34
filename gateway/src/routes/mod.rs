//! REST handlers, one module per route group. Each is a thin adapter: parse,
//! call the service over gRPC with the caller's token, map the answer.

pub mod admin;
pub mod auth;
pub mod browser;
pub mod documents;
pub mod mail;
pub mod ops;
pub mod queries;
pub mod search;
pub mod users;
