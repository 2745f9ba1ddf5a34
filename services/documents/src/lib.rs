//! pai's documents service: streams uploads to disk, records them with
//! their ingest job in one transaction, and runs the ingest worker that
//! extracts, classifies, chunks and indexes each PDF.

mod blob;
pub mod error;
mod grpc;
mod repo;
pub mod service;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pai_common::amqp::{EventRetry, OutboxRelay};
use pai_common::config::{AmqpSettings, DatabaseSettings, Env, JwtSettings};
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, RequireUser};
use pai_common::revocation::follow_auth;
use pai_common::shards::ShardUrls;
use pai_common::{ConfigError, grpc as grpc_util};
use pai_extract::Limits;
use pai_proto::v1::document_service_server::DocumentServiceServer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::blob::BlobStore;
pub use crate::service::{DocumentsCore, Extractor};
use crate::worker::WorkerSettings;

pub const SCHEMA: &str = "documents";
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/documents");

/// Upload size limit: 10 MiB unless `MAX_FILE_SIZE` says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct DocumentsSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub jwt: JwtSettings,
    pub upload_path: PathBuf,
    pub max_file_size: u64,
    /// Where each search shard is reached (`SEARCH_URL`, `SEARCH_SHARDS`).
    pub search_url: ShardUrls,
    /// Where the revocation feed is read, so that a revoked session's token
    /// is refused here too.
    pub auth_url: String,
    pub extractor: Extractor,
    pub worker_concurrency: u16,
    pub max_attempts: i32,
    pub retry_delay: Duration,
    /// How a failing event (`user.deleted`) is retried, then dead-lettered.
    pub event_retry: EventRetry,
}

impl DocumentsSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let program = pai_common::config::extract_program(env)?;
        let concurrency = env.parse("INGEST_CONCURRENCY", 2u16)?;
        if concurrency == 0 {
            return Err(ConfigError::new("INGEST_CONCURRENCY", "must be at least 1"));
        }
        Ok(Self {
            database: DatabaseSettings::from_env(env)?,
            amqp: AmqpSettings::from_env(env)?,
            jwt: JwtSettings::from_env(env)?,
            upload_path: PathBuf::from(env.string("UPLOAD_PATH", "data/uploads")),
            max_file_size: env.parse("MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE)?,
            search_url: ShardUrls::from_env(env, "http://127.0.0.1:50054")?,
            auth_url: env.string("AUTH_URL", "http://127.0.0.1:50051"),
            extractor: Extractor {
                program,
                args: vec!["extract".to_owned()],
                limits: Limits {
                    timeout: env.seconds("EXTRACT_TIMEOUT", 60)?,
                    memory_bytes: env.parse("EXTRACT_MEMORY_BYTES", 1u64 << 30)?,
                },
            },
            worker_concurrency: concurrency,
            max_attempts: env.parse("INGEST_MAX_ATTEMPTS", 3i32)?.max(1),
            retry_delay: Duration::from_millis(env.parse("INGEST_RETRY_DELAY_MS", 1000u64)?),
            event_retry: EventRetry::from_env(env)?,
        })
    }
}

/// Serves the documents API, the ingest worker, the outbox relay and the
/// `user.deleted` consumer until `shutdown` is cancelled. Co-located
/// services call it through `local`, and it calls search through it.
pub async fn serve(
    settings: DocumentsSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    let search =
        pai_common::shards::search_internal(&local, &settings.search_url, &keys, "documents")?;
    tokio::fs::create_dir_all(&settings.upload_path)
        .await
        .with_context(|| format!("UPLOAD_PATH {}", settings.upload_path.display()))?;
    let core = Arc::new(DocumentsCore {
        pool: pool.clone(),
        blobs: BlobStore::new(settings.upload_path.clone()),
        search,
        max_file_size: settings.max_file_size,
        extractor: settings.extractor.clone(),
    });

    let (revocations, revocations_task) = follow_auth(
        &settings.auth_url,
        Arc::clone(&keys),
        "documents",
        shutdown.clone(),
    )
    .with_context(|| format!("AUTH_URL {:?}", settings.auth_url))?;
    let relay = OutboxRelay::new(pool, "documents.outbox", settings.amqp.clone());
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let worker_task = tokio::spawn(worker::run(
        Arc::clone(&core),
        WorkerSettings {
            amqp: settings.amqp.clone(),
            concurrency: settings.worker_concurrency,
            max_attempts: settings.max_attempts,
            retry_delay: settings.retry_delay,
        },
        shutdown.clone(),
    ));
    let backlog_task = tokio::spawn(pai_common::db::watch_backlog(
        core.pool.clone(),
        "document",
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(updated_at)), 0)::float8 \
         FROM documents.documents WHERE status IN ('queued', 'processing')",
        shutdown.clone(),
    ));
    let deletions = Arc::clone(&core);
    let events_task = tokio::spawn(pai_common::amqp::consume_user_deleted(
        settings.amqp.clone(),
        settings.event_retry,
        pai_common::amqp::DOCUMENTS_USER_DELETED,
        shutdown.clone(),
        move |user_id| {
            let core = Arc::clone(&deletions);
            async move { core.delete_user(user_id).await.map_err(|e| e.to_string()) }
        },
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DocumentServiceServer<grpc::Grpc>>()
        .await;
    let routes = Routes::new(tonic::service::interceptor::InterceptedService::new(
        DocumentServiceServer::new(grpc::Grpc { core }).max_decoding_message_size(4 * 1024 * 1024),
        RequireUser::new(keys).with_revocations(revocations),
    ));
    let result = grpc_util::serve(
        "documents",
        routes.add_service(health_service),
        listener,
        &local,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = tokio::join!(
        relay_task,
        worker_task,
        events_task,
        revocations_task,
        backlog_task
    );
    result
}
