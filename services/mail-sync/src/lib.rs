//! pai's mail-sync service: connects each user's Gmail accounts over OAuth2
//! (PKCE, tokens encrypted at rest), syncs them in full and then through
//! Gmail's history, stores, classifies and threads the mail, and indexes
//! each email and PDF attachment for search through RabbitMQ.

mod connect;
pub mod crypto;
pub mod error;
mod grpc;
pub mod import;
mod ingest;
mod repo;
mod service;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pai_common::amqp::{EventRetry, OutboxRelay};
use pai_common::config::{AmqpSettings, DatabaseSettings, Env, JwtSettings};
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, RequireService, RequireUser};
use pai_common::revocation::follow_auth;
use pai_common::shards::ShardUrls;
use pai_common::{ConfigError, grpc as grpc_util};
use pai_gmail::GoogleEndpoints;
use pai_proto::v1::mail_connect_server::MailConnectServer;
use pai_proto::v1::mail_import_server::MailImportServer;

/// The largest `ImportEmails` call: a batch of emails with their PDFs.
const IMPORT_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
use pai_proto::v1::mail_service_server::MailServiceServer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::crypto::KeyRing;
pub use crate::service::MailCore;

pub const SCHEMA: &str = "mail";
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/mail");

/// The OAuth client pai is registered as at Google, and where Google is.
#[derive(Debug, Clone)]
pub struct GmailSettings {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub endpoints: GoogleEndpoints,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub jwt: JwtSettings,
    pub auth_url: String,
    /// Where each search shard is reached (`SEARCH_URL`, `SEARCH_SHARDS`).
    pub search_url: ShardUrls,
    /// `None` without `GMAIL_CLIENT_ID` and `GMAIL_CLIENT_SECRET`: the
    /// stack runs, and connecting answers that Gmail is not configured.
    pub gmail: Option<GmailSettings>,
    /// `None` without `MAIL_TOKEN_ENCRYPTION_KEY` (connecting is refused).
    pub keys: Option<KeyRing>,
    /// How long a connect link stays good (`MAIL_CONNECT_TTL_SECS`, 600).
    pub connect_ttl: Duration,
    /// How often each account syncs on its own (`MAIL_SYNC_INTERVAL_SECS`, 300).
    pub sync_interval: Duration,
    /// Backoff of Gmail calls (`MAIL_BACKOFF_BASE_MS`, 1000; at most
    /// `MAIL_BACKOFF_MAX_ATTEMPTS`, 6, tries).
    pub backoff: pai_gmail::Backoff,
    /// Where PDF attachments are kept: `UPLOAD_PATH`/mail.
    pub attachments_path: PathBuf,
    pub parse_limits: pai_email::Limits,
    pub extractor: Extractor,
    pub event_retry: EventRetry,
}

/// How PDF attachments' text is extracted: the same isolated child as
/// uploads (`pai extract`), with the same limits.
#[derive(Debug, Clone)]
pub struct Extractor {
    pub program: PathBuf,
    pub limits: pai_extract::Limits,
}

impl MailSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let gmail = match (env.get("GMAIL_CLIENT_ID"), env.get("GMAIL_CLIENT_SECRET")) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                let real = GoogleEndpoints::default();
                Some(GmailSettings {
                    client_id: id.to_owned(),
                    client_secret: secret.to_owned(),
                    redirect_uri: env.string(
                        "GMAIL_REDIRECT_URI",
                        "http://localhost:8000/api/gmail/callback",
                    ),
                    endpoints: GoogleEndpoints {
                        auth_url: env.string("GOOGLE_AUTH_URL", &real.auth_url),
                        token_url: env.string("GOOGLE_TOKEN_URL", &real.token_url),
                        revoke_url: env.string("GOOGLE_REVOKE_URL", &real.revoke_url),
                        api_base_url: env.string("GMAIL_API_BASE_URL", &real.api_base_url),
                    },
                })
            }
            _ => None,
        };
        let keys = match env.get("MAIL_TOKEN_ENCRYPTION_KEY") {
            Some(key) if !key.is_empty() => {
                let previous: Vec<&str> = env
                    .get("MAIL_TOKEN_PREVIOUS_KEYS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .collect();
                Some(KeyRing::new(key, &previous).map_err(|e| {
                    ConfigError::new(
                        "MAIL_TOKEN_ENCRYPTION_KEY",
                        format!("{e} (and each of MAIL_TOKEN_PREVIOUS_KEYS)"),
                    )
                })?)
            }
            _ => None,
        };
        let program = pai_common::config::extract_program(env)?;
        let upload_path = PathBuf::from(env.string("UPLOAD_PATH", "data/uploads"));
        Ok(Self {
            database: DatabaseSettings::from_env(env)?,
            amqp: AmqpSettings::from_env(env)?,
            jwt: JwtSettings::from_env(env)?,
            auth_url: env.string("AUTH_URL", "http://127.0.0.1:50051"),
            search_url: ShardUrls::from_env(env, "http://127.0.0.1:50054")?,
            gmail,
            keys,
            connect_ttl: env.seconds("MAIL_CONNECT_TTL_SECS", 600)?,
            sync_interval: env.seconds("MAIL_SYNC_INTERVAL_SECS", 300)?,
            backoff: pai_gmail::Backoff {
                base: Duration::from_millis(env.parse("MAIL_BACKOFF_BASE_MS", 1000u64)?),
                max_attempts: env.parse("MAIL_BACKOFF_MAX_ATTEMPTS", 6u32)?.max(1),
                ..pai_gmail::Backoff::default()
            },
            attachments_path: upload_path.join("mail"),
            parse_limits: pai_email::Limits {
                max_attachment_bytes: env.parse("MAIL_MAX_ATTACHMENT_BYTES", 20usize << 20)?,
                ..pai_email::Limits::default()
            },
            extractor: Extractor {
                program,
                limits: pai_extract::Limits {
                    timeout: env.seconds("EXTRACT_TIMEOUT", 60)?,
                    memory_bytes: env.parse("EXTRACT_MEMORY_BYTES", 1u64 << 30)?,
                },
            },
            event_retry: EventRetry::from_env(env)?,
        })
    }
}

/// Serves the mail API, the sync and ingest consumers, the sync schedule,
/// the outbox relay and the `user.deleted` consumer until `shutdown`.
pub async fn serve(
    settings: MailSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    let search =
        pai_common::shards::search_internal(&local, &settings.search_url, &keys, "mail-sync")?;
    tokio::fs::create_dir_all(&settings.attachments_path)
        .await
        .with_context(|| format!("UPLOAD_PATH {}", settings.attachments_path.display()))?;
    let core = Arc::new(MailCore::new(&settings, pool.clone(), search)?);

    let (revocations, revocations_task) = follow_auth(
        &settings.auth_url,
        Arc::clone(&keys),
        "mail-sync",
        shutdown.clone(),
    )
    .with_context(|| format!("AUTH_URL {:?}", settings.auth_url))?;
    let backlog_task = tokio::spawn(pai_common::db::watch_backlog(
        pool.clone(),
        "email",
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
         FROM mail.emails WHERE index_status = 'queued'",
        shutdown.clone(),
    ));
    let relay = OutboxRelay::new(pool, "mail.outbox", settings.amqp.clone());
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let sync_task = tokio::spawn(sync::consume(
        Arc::clone(&core),
        settings.amqp.clone(),
        settings.event_retry,
        shutdown.clone(),
    ));
    let schedule_task = tokio::spawn(sync::schedule(
        Arc::clone(&core),
        settings.sync_interval,
        shutdown.clone(),
    ));
    let ingest_task = tokio::spawn(ingest::consume(
        Arc::clone(&core),
        settings.amqp.clone(),
        settings.event_retry,
        shutdown.clone(),
    ));
    let deletions = Arc::clone(&core);
    let events_task = tokio::spawn(pai_common::amqp::consume_user_deleted(
        settings.amqp.clone(),
        settings.event_retry,
        pai_common::amqp::MAIL_USER_DELETED,
        shutdown.clone(),
        move |user_id| {
            let core = Arc::clone(&deletions);
            async move { core.erase_user(user_id).await.map_err(|e| e.to_string()) }
        },
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<MailServiceServer<grpc::Grpc>>().await;
    let handlers = grpc::Grpc {
        core: Arc::downgrade(&core),
    };
    let routes = Routes::new(tonic::service::interceptor::InterceptedService::new(
        MailServiceServer::new(handlers.clone()),
        RequireUser::new(Arc::clone(&keys)).with_revocations(revocations),
    ))
    .add_service(tonic::service::interceptor::InterceptedService::new(
        MailConnectServer::new(handlers.clone()),
        RequireService::new(Arc::clone(&keys)),
    ))
    .add_service(tonic::service::interceptor::InterceptedService::new(
        MailImportServer::new(handlers).max_decoding_message_size(IMPORT_MESSAGE_BYTES),
        RequireService::new(keys),
    ));
    let result = grpc_util::serve(
        "mail-sync",
        routes.add_service(health_service),
        listener,
        &local,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = tokio::join!(
        backlog_task,
        relay_task,
        sync_task,
        schedule_task,
        ingest_task,
        events_task,
        revocations_task
    );
    drop(core);
    result
}
