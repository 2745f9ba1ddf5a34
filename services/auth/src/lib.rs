//! pai's auth service: accounts, sessions with rotating refresh tokens,
//! lockout, the admin role, account deletion, and the revocation feed that
//! lets every verifier refuse a revoked session's tokens within a second.

pub mod error;
mod grpc;
pub mod password;
mod repo;
pub mod service;
mod session_cache;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pai_common::amqp::OutboxRelay;
use pai_common::config::{AmqpSettings, DatabaseSettings, Env, JwtSettings};
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, RequireService, RequireUser};
use pai_common::{ConfigError, grpc as grpc_util};
use pai_proto::v1::{
    account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
    auth_internal_server::AuthInternalServer, auth_service_server::AuthServiceServer,
};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use crate::error::AuthError;
use crate::password::{Argon2Settings, Hasher, PasswordPolicy};
pub use crate::service::{AuthService, Client, Lockout};
use crate::session_cache::SessionCache;

/// The schema this service owns.
pub const SCHEMA: &str = "auth";
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/auth");

/// The longest a refresh-token family may live (ASVS 10.4.8).
const MAX_REFRESH_DAYS: u64 = 30;

/// A session cache entry's default life: short enough that a write made by
/// another auth replica shows within a quarter of a second.
const DEFAULT_SESSION_CACHE_TTL_MS: u64 = 250;
/// The longest allowed: revocations must reach every verifier within 1 s.
const MAX_SESSION_CACHE_TTL_MS: u64 = 500;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub jwt: JwtSettings,
    pub password_min_length: usize,
    pub lockout: Lockout,
    pub argon2: Argon2Settings,
    pub refresh_lifetime: Duration,
    /// How long a session found valid is trusted without a query by
    /// read-only handlers (`SESSION_CACHE_TTL_MS`, 0 turns the cache off).
    pub session_cache_ttl: Duration,
}

impl AuthSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let days = env.parse("REFRESH_TOKEN_LIFETIME_DAYS", MAX_REFRESH_DAYS)?;
        if !(1..=MAX_REFRESH_DAYS).contains(&days) {
            return Err(ConfigError::new(
                "REFRESH_TOKEN_LIFETIME_DAYS",
                format!("must be between 1 and {MAX_REFRESH_DAYS}"),
            ));
        }
        let attempts = env.parse("FAILED_LOGIN_ATTEMPTS_LIMIT", 5u32)?;
        if attempts == 0 {
            return Err(ConfigError::new(
                "FAILED_LOGIN_ATTEMPTS_LIMIT",
                "must be at least 1",
            ));
        }
        let cache_ms = env.parse("SESSION_CACHE_TTL_MS", DEFAULT_SESSION_CACHE_TTL_MS)?;
        if cache_ms > MAX_SESSION_CACHE_TTL_MS {
            return Err(ConfigError::new(
                "SESSION_CACHE_TTL_MS",
                format!(
                    "must be at most {MAX_SESSION_CACHE_TTL_MS} (revocations reach verifiers within 1 s)"
                ),
            ));
        }
        let defaults = Argon2Settings::default();
        Ok(Self {
            database: DatabaseSettings::from_env(env)?,
            amqp: AmqpSettings::from_env(env)?,
            jwt: JwtSettings::from_env(env)?,
            password_min_length: env.parse("PASSWORD_MIN_LENGTH", 12usize)?,
            lockout: Lockout {
                attempts,
                duration: env.seconds("ACCOUNT_LOCKOUT_DURATION", 300)?,
            },
            argon2: Argon2Settings {
                memory_kib: env.parse("ARGON2_MEMORY_KIB", defaults.memory_kib)?,
                iterations: env.parse("ARGON2_ITERATIONS", defaults.iterations)?,
                parallelism: env.parse("ARGON2_PARALLELISM", defaults.parallelism)?,
            },
            refresh_lifetime: Duration::from_secs(days * 86_400),
            session_cache_ttl: Duration::from_millis(cache_ms),
        })
    }
}

/// Builds the service core (also used by `pai admin`).
pub fn build(settings: &AuthSettings, pool: PgPool) -> anyhow::Result<AuthService> {
    let hasher = Hasher::new(settings.argon2).context("argon2 settings")?;
    Ok(AuthService {
        pool,
        keys: Arc::new(JwtKeys::new(&settings.jwt)),
        hasher,
        policy: PasswordPolicy {
            min_length: settings.password_min_length,
        },
        lockout: settings.lockout,
        refresh_lifetime: settings.refresh_lifetime,
        sessions: SessionCache::new(settings.session_cache_ttl),
    })
}

/// The auth gRPC API: its four services behind their access rules.
fn routes(service: Arc<AuthService>) -> Routes {
    let keys = Arc::clone(&service.keys);
    let handlers = grpc::Grpc { service };
    Routes::new(AuthServiceServer::new(handlers.clone()))
        .add_service(AccountServiceServer::with_interceptor(
            handlers.clone(),
            RequireUser::new(Arc::clone(&keys)),
        ))
        .add_service(AdminServiceServer::with_interceptor(
            handlers.clone(),
            RequireUser::new(Arc::clone(&keys)).admin_only(),
        ))
        .add_service(AuthInternalServer::with_interceptor(
            handlers,
            RequireService::new(keys),
        ))
}

/// Serves the auth gRPC API on `listener`, and to co-located services
/// through `local`, until `shutdown` is cancelled, with the outbox relay and
/// the revocation-feed pruner beside it.
pub async fn serve(
    settings: AuthSettings,
    pool: PgPool,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    let service = Arc::new(build(&settings, pool.clone())?);
    let relay = OutboxRelay::new(pool.clone(), "auth.outbox", settings.amqp.clone());
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let pruner_task = tokio::spawn(prune_revocations(pool, shutdown.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthServiceServer<grpc::Grpc>>().await;
    let result = grpc_util::serve(
        "auth",
        routes(service).add_service(health_service),
        listener,
        &local,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = tokio::join!(relay_task, pruner_task);
    result
}

async fn prune_revocations(pool: PgPool, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = repo::prune_revocations(&pool).await {
            tracing::warn!(error = %err, "pruning the revocation feed failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use pai_proto::v1::Empty;
    use pai_proto::v1::account_service_client::AccountServiceClient;

    use super::*;

    /// A co-located client reaches the server's own routes, interceptor
    /// included: no token, or a forged one, is refused before any query.
    #[tokio::test]
    async fn in_process_calls_are_still_verified() {
        let env = Env::from_pairs([("JWT_SECRET_KEY", "local-test-key-Rb7Xq2Lm9ZcT4wNv6KpH3sJd")]);
        let settings = AuthSettings::from_env(&env).unwrap();
        // Never connected: the interceptor answers before a handler runs.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let local = LocalServers::default();
        let url = "http://auth.in-process.test:1";
        local.register(url, routes(Arc::new(build(&settings, pool).unwrap())));

        let mut client = AccountServiceClient::new(local.channel(url).unwrap());
        let status = client.get_profile(Empty {}).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

        let forged = pai_common::identity::with_bearer(tonic::Request::new(Empty {}), "e30.e30.x");
        let status = client.get_profile(forged).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

        // A URL nobody registered goes over the network (and finds nothing).
        let mut remote = AccountServiceClient::new(local.channel("http://127.0.0.1:1").unwrap());
        let status = remote.get_profile(Empty {}).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }

    /// ASVS 10.4.8: a refresh-token family lives 1 to 30 days; anything
    /// else stops start-up, naming the setting.
    #[test]
    fn the_refresh_lifetime_is_between_one_and_thirty_days() {
        let env = Env::from_pairs([("JWT_SECRET_KEY", "local-test-key-Rb7Xq2Lm9ZcT4wNv6KpH3sJd")]);
        let days = |settings: AuthSettings| settings.refresh_lifetime.as_secs() / 86_400;
        assert_eq!(days(AuthSettings::from_env(&env).unwrap()), 30);
        let one = env.clone().with("REFRESH_TOKEN_LIFETIME_DAYS", "1");
        assert_eq!(days(AuthSettings::from_env(&one).unwrap()), 1);
        for refused in ["0", "31", "365", "-1", "a week"] {
            let env = env.clone().with("REFRESH_TOKEN_LIFETIME_DAYS", refused);
            let err = AuthSettings::from_env(&env).expect_err(refused);
            assert_eq!(err.name, "REFRESH_TOKEN_LIFETIME_DAYS", "{refused:?}");
        }
    }
}
