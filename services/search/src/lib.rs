//! pai's search service: `search.chunks` is the source of truth; one
//! tantivy BM25 index and one usearch vector index per user are derived
//! from it, caught up on start and rebuildable, and opened when first used
//! (at most `SEARCH_OPEN_USERS_MAX` idle ones stay open). Search is hybrid
//! (reciprocal rank fusion) and always scoped to the caller.

mod analysis;
pub mod error;
mod grpc;
mod index_thread;
mod open_users;
pub mod repo;
#[cfg(test)]
mod serve_tests;
pub mod service;
pub mod text_index;
mod text_search;
mod top_hits;
pub mod vector_index;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pai_common::amqp::EventRetry;
use pai_common::config::{AmqpSettings, DatabaseSettings, Env, JwtSettings};
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, RequireService, RequireUser, ServiceCredential};
use pai_common::revocation::follow_auth;
use pai_common::shards::{Shard, ShardUrls};
use pai_common::{ConfigError, grpc as grpc_util};
use pai_proto::v1::DeleteUserRequest;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use pai_proto::v1::search_internal_server::SearchInternalServer;
use pai_proto::v1::search_service_server::SearchServiceServer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use crate::open_users::held_under;
pub use crate::service::{Mode, SearchCore};

pub const SCHEMA: &str = "search";
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/search");

/// Users whose indexes stay open by default: a user's BM25 index maps a
/// few files (one segment after a rebuild: ~10 maps), their vectors take
/// ~1 KB a chunk, so 1,000 users of 200 chunks hold ~10,000 maps and
/// ~200 MB.
pub const DEFAULT_OPEN_USERS_MAX: usize = 1_000;

#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub jwt: JwtSettings,
    pub vector_db_path: PathBuf,
    /// Users whose indexes stay open when idle, of each kind (BM25,
    /// vectors); the least recently used beyond it are closed.
    pub open_users_max: usize,
    pub inference_url: String,
    /// Where the revocation feed is read, so that a revoked session's token
    /// is refused here too.
    pub auth_url: String,
    /// How a `user.deleted` event that fails is retried, then dead-lettered.
    pub event_retry: EventRetry,
    /// The users this replica serves: `SEARCH_SHARD` of `SEARCH_SHARDS`.
    pub shard: Shard,
    /// Where every shard is reached (`SEARCH_URL`, as callers have it): a
    /// `user.deleted` event for a user another shard owns goes there.
    pub shards: ShardUrls,
}

impl SearchSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseSettings::from_env(env)?,
            amqp: AmqpSettings::from_env(env)?,
            jwt: JwtSettings::from_env(env)?,
            vector_db_path: PathBuf::from(env.string("VECTOR_DB_PATH", "data/vector_db")),
            open_users_max: match env.parse("SEARCH_OPEN_USERS_MAX", DEFAULT_OPEN_USERS_MAX)? {
                0 => {
                    return Err(ConfigError::new(
                        "SEARCH_OPEN_USERS_MAX",
                        "must be at least 1",
                    ));
                }
                max => max,
            },
            inference_url: env.string("INFERENCE_URL", "http://127.0.0.1:50055"),
            auth_url: env.string("AUTH_URL", "http://127.0.0.1:50051"),
            event_retry: EventRetry::from_env(env)?,
            shard: Shard::from_env(env)?,
            shards: ShardUrls::from_env(env, "http://127.0.0.1:50054")?,
        })
    }
}

/// Opens the indexes (catching them up with `search.chunks`).
/// Embeddings come from the inference service, in process when `local`
/// has it.
pub async fn open(
    settings: &SearchSettings,
    pool: PgPool,
    local: &LocalServers,
) -> anyhow::Result<SearchCore> {
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    let channel = local
        .channel(&settings.inference_url)
        .with_context(|| format!("INFERENCE_URL {:?}", settings.inference_url))?;
    let embedder =
        InferenceInternalClient::with_interceptor(channel, ServiceCredential::new(keys, "search"))
            .max_decoding_message_size(64 * 1024 * 1024);
    SearchCore::open(
        pool,
        settings.vector_db_path.clone(),
        settings.open_users_max,
        embedder,
        settings.shard,
    )
    .await
    .context("opening the search indexes")
}

/// Serves search on `listener` until `shutdown` is cancelled, and erases
/// the data of every user whose `user.deleted` event arrives. Co-located
/// services call it through `local`.
pub async fn serve(
    settings: SearchSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    // Owned here only (the handlers hold it weakly): when this returns, or
    // is dropped, the core goes and every index it opened is closed, though
    // the routes stay registered in `local` while a client in this process
    // lives.
    let core = Arc::new(open(&settings, pool, &local).await?);
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    let handlers = grpc::Grpc::new(&core);
    let (revocations, revocations_task) = follow_auth(
        &settings.auth_url,
        Arc::clone(&keys),
        "search",
        shutdown.clone(),
    )
    .with_context(|| format!("AUTH_URL {:?}", settings.auth_url))?;

    // Each event reaches one replica; the user's own shard erases them.
    let peers = pai_common::shards::search_internal(&local, &settings.shards, &keys, "search")?;
    let events = tokio::spawn(pai_common::amqp::consume_user_deleted(
        settings.amqp.clone(),
        settings.event_retry,
        pai_common::amqp::SEARCH_USER_DELETED,
        shutdown.clone(),
        {
            let core = Arc::clone(&core);
            move |user_id| {
                let core = Arc::clone(&core);
                let peers = peers.clone();
                async move {
                    if core.shard().owns(user_id) {
                        let removed = core.delete_user(user_id).await.map_err(|e| e.to_string())?;
                        return Ok(removed as u64);
                    }
                    let removed = peers
                        .for_user(user_id)
                        .delete_user(DeleteUserRequest {
                            user_id: user_id.to_string(),
                        })
                        .await
                        .map_err(|status| format!("the user's shard: {}", status.message()))?
                        .into_inner();
                    Ok(u64::from(removed.deleted))
                }
            }
        },
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SearchServiceServer<grpc::Grpc>>()
        .await;
    let routes = Routes::new(SearchServiceServer::with_interceptor(
        handlers.clone(),
        RequireUser::new(Arc::clone(&keys)).with_revocations(revocations),
    ))
    .add_service(tonic::service::interceptor::InterceptedService::new(
        SearchInternalServer::new(handlers).max_decoding_message_size(64 * 1024 * 1024),
        RequireService::new(keys),
    ));
    let result = grpc_util::serve(
        "search",
        routes.add_service(health_service),
        listener,
        &local,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = tokio::join!(events, revocations_task);
    drop(core);
    result
}
