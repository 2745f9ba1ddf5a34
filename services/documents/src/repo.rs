//! SQL over schema `documents`. Every query on user data filters by user id.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub filename: String,
    pub category: String,
    pub status: String,
    pub error: Option<String>,
    pub pages: i32,
    pub chunks: i32,
    pub bytes: i64,
    pub sha256: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, user_id, title, filename, category, status, error, pages, chunks, \
     bytes, sha256, attempts, created_at, updated_at";

pub struct NewDocument<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: &'a str,
    pub filename: &'a str,
    pub bytes: i64,
    pub sha256: &'a str,
    /// What a document of an older install brings along.
    pub imported: Option<&'a Imported>,
}

/// A document of an older install's dates, metadata and namespace.
#[derive(Debug, Clone)]
pub struct Imported {
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: serde_json::Value,
    pub namespace: String,
}

pub async fn insert(conn: &mut PgConnection, doc: &NewDocument<'_>) -> Result<DocumentRow> {
    let imported = doc.imported;
    Ok(sqlx::query_as(&format!(
        "INSERT INTO documents.documents \
           (id, user_id, title, filename, bytes, sha256, created_at, updated_at, metadata, namespace) \
         VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), coalesce($8, now()), \
           coalesce($9, '{{}}'), coalesce($10, 'default')) RETURNING {COLUMNS}"
    ))
    .bind(doc.id)
    .bind(doc.user_id)
    .bind(doc.title)
    .bind(doc.filename)
    .bind(doc.bytes)
    .bind(doc.sha256)
    .bind(imported.map(|i| i.created_at))
    .bind(imported.map(|i| i.updated_at))
    .bind(imported.map(|i| sqlx::types::Json(&i.metadata)))
    .bind(imported.map(|i| i.namespace.as_str()))
    .fetch_one(conn)
    .await?)
}

pub async fn get(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents.documents WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub struct ListFilter<'a> {
    pub category: Option<&'a str>,
    pub status: Option<&'a str>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Newest first, keyset-paginated by (created_at, id).
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    filter: &ListFilter<'_>,
) -> Result<Vec<DocumentRow>> {
    let (after_time, after_id) = filter.after.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM documents.documents WHERE user_id = $1 \
         AND ($2::text IS NULL OR category = $2) AND ($3::text IS NULL OR status = $3) \
         AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    ))
    .bind(user_id)
    .bind(filter.category)
    .bind(filter.status)
    .bind(after_time)
    .bind(after_id)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?)
}

pub async fn delete(conn: &mut PgConnection, user_id: Uuid, id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM documents.documents WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The advisory lock on one user's erasure: writers hold it shared, the
/// erasure exclusive (two-key form, so it shares no key with other locks).
const ERASURE_LOCK: &str = "hashtext('documents.erased_users'), hashtext($1::text)";

/// Takes the shared erasure lock on `user_id` for the rest of the
/// transaction and tells whether the user was erased. A write made in the
/// same transaction after `false` commits before any erasure of the user.
pub async fn lock_unerased(conn: &mut PgConnection, user_id: Uuid) -> Result<bool> {
    sqlx::query(&format!(
        "SELECT pg_advisory_xact_lock_shared({ERASURE_LOCK})"
    ))
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    let erased: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM documents.erased_users WHERE user_id = $1)",
    )
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(!erased)
}

pub async fn is_erased(pool: &PgPool, user_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM documents.erased_users WHERE user_id = $1)",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?)
}

/// Records the user as erased (under the exclusive erasure lock, so it
/// waits for writes in flight) and deletes their documents and queued jobs.
pub async fn erase_user(conn: &mut PgConnection, user_id: Uuid) -> Result<u64> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({ERASURE_LOCK})"))
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO documents.erased_users (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM documents.outbox WHERE payload->>'user_id' = $1::text")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM documents.documents WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Queues the document again (status `queued`, attempts reset).
pub async fn requeue(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE documents.documents SET status = 'queued', error = NULL, attempts = 0, \
         updated_at = now() WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Marks an ingest attempt started; returns the row with its attempt count.
pub async fn start_attempt(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE documents.documents SET status = 'processing', attempts = attempts + 1, \
         updated_at = now() WHERE user_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn mark_indexed(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    category: &str,
    pages: i32,
    chunks: i32,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE documents.documents SET status = 'indexed', error = NULL, category = $3, \
         pages = $4, chunks = $5, updated_at = now() WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .bind(category)
    .bind(pages)
    .bind(chunks)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_failed(pool: &PgPool, user_id: Uuid, id: Uuid, reason: &str) -> Result<()> {
    sqlx::query(
        "UPDATE documents.documents SET status = 'failed', error = $3, chunks = 0, \
         updated_at = now() WHERE user_id = $1 AND id = $2",
    )
    .bind(user_id)
    .bind(id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn insert_outbox(
    conn: &mut PgConnection,
    routing_key: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO documents.outbox (routing_key, payload) VALUES ($1, $2)")
        .bind(routing_key)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}
