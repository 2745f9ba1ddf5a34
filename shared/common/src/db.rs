//! The PostgreSQL pool and the per-schema migration runner.
//!
//! Each service owns one schema; its migrations run with `search_path` set
//! to that schema, so sqlx's bookkeeping table lives beside the service's own
//! tables (`auth._sqlx_migrations`) and schema versions stay independent.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(#[source] sqlx::Error),
    #[error("cannot reach PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrating schema {schema}: {source}")]
    Migrate {
        schema: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>().map_err(DbError::Url)
}

/// Opens a pool; connections are made lazily, so start-up survives a
/// PostgreSQL that is still starting.
/// SQLSTATE the erased-user triggers raise (`{schema}.refuse_erased_users`).
const ERASED_USER_STATE: &str = "PAI01";

/// Whether `err` is a write refused because its user was erased.
pub fn is_erased_user(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(ERASED_USER_STATE))
}

pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options(&settings.url)?))
}

/// `url` with its database name replaced by `name` (query parameters kept):
/// how tests and benchmarks reach a database of their own.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn ensure_database(url: &str) -> Result<(), DbError> {
    let target = options(url)?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = PgConnection::connect_with(&target.clone().database("postgres"))
        .await
        .map_err(DbError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut admin)
            .await?;
        tracing::info!(database = %name, "created database");
    }
    admin.close().await?;
    Ok(())
}

/// Runs `migrator` inside `schema`, creating the schema first.
pub async fn migrate(pool: &PgPool, schema: &str, migrator: &Migrator) -> Result<(), DbError> {
    let mut conn = pool.acquire().await.map_err(DbError::Connect)?;
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
    ))
    .execute(&mut *conn)
    .await?;
    let result = migrator.run(&mut *conn).await;
    sqlx::raw_sql("RESET search_path")
        .execute(&mut *conn)
        .await?;
    result.map_err(|source| DbError::Migrate {
        schema: schema.to_owned(),
        source,
    })
}

/// Returns the latest applied migration version of `schema`, if any.
pub async fn schema_version(pool: &PgPool, schema: &str) -> Result<Option<i64>, DbError> {
    let table_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = '_sqlx_migrations')",
    )
    .bind(schema)
    .fetch_one(pool)
    .await?;
    if !table_exists {
        return Ok(None);
    }
    let version = sqlx::query_scalar(&format!(
        "SELECT max(version) FROM {schema}._sqlx_migrations WHERE success"
    ))
    .fetch_one(pool)
    .await?;
    Ok(version)
}

/// Items waiting for ingest, by `kind` (`document`, `email`): a gauge.
pub const INGEST_BACKLOG: &str = "pai_ingest_backlog";
/// How long the oldest of them has waited, in seconds: a gauge.
pub const INGEST_BACKLOG_AGE: &str = "pai_ingest_backlog_age_seconds";
/// How often the backlog is read.
const BACKLOG_EVERY: Duration = Duration::from_secs(15);

/// Until `shutdown`, sets the backlog gauges of `kind` every 15 s from
/// `query`, which returns the items waiting and the age in seconds of the
/// oldest (0 when none).
pub async fn watch_backlog(
    pool: PgPool,
    kind: &'static str,
    query: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut every = tokio::time::interval(BACKLOG_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match sqlx::query_as::<_, (i64, f64)>(query)
            .fetch_one(&pool)
            .await
        {
            Ok((waiting, age)) => {
                metrics::gauge!(INGEST_BACKLOG, "kind" => kind).set(waiting as f64);
                metrics::gauge!(INGEST_BACKLOG_AGE, "kind" => kind).set(age);
            }
            Err(err) => tracing::warn!(kind, error = %err, "reading the ingest backlog"),
        }
    }
}
