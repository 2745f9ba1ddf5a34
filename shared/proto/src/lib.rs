//! Generated protobuf messages and tonic clients/servers for pai's gRPC API.
//!
//! Nothing is hand-written here beside re-exports: the wire types live in
//! `proto/pai/v1/*.proto` at the workspace root.

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("pai.v1");
}

pub use prost_types::Timestamp;
