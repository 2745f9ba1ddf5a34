//! SQL over schema `inference`: the query history. Every statement on user
//! data filters by user id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::Result;

/// A source as stored with its query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSource {
    pub n: u32,
    pub source_kind: String,
    pub source_id: String,
    pub title: String,
    pub page: u32,
    pub snippet: String,
    pub score: f32,
    pub cited: bool,
}

/// What a query measured, as stored (`{}` while it runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredTimings {
    pub queue_ms: f32,
    pub retrieval_ms: f32,
    pub first_token_ms: f32,
    pub total_ms: f32,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub prompt_tokens_per_s: f32,
    pub generation_tokens_per_s: f32,
    pub cached_prompt_tokens: u32,
}

/// What the question was asked of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredFilters {
    pub source_kind: String,
    pub category: String,
    pub source_ids: Vec<String>,
    pub k: u32,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueryRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub query: String,
    pub response: String,
    pub sources: Json<Vec<StoredSource>>,
    pub model: String,
    pub timings: Json<StoredTimings>,
    pub status: String,
    pub error: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, user_id, query, response, sources, model, timings, status, error, created_at";

/// Records a question as it arrives (status `running`).
pub async fn insert(
    pool: &PgPool,
    id: Uuid,
    user_id: Uuid,
    query: &str,
    filters: &StoredFilters,
) -> Result<QueryRow> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO inference.queries (id, user_id, query, filters) VALUES ($1, $2, $3, $4) \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(query)
    .bind(Json(filters))
    .fetch_one(pool)
    .await?)
}

/// How a query ended.
pub struct Outcome<'a> {
    pub response: &'a str,
    pub sources: &'a [StoredSource],
    pub model: &'a str,
    pub timings: &'a StoredTimings,
    pub status: &'a str,
    pub error: &'a str,
}

/// Completes a query; `None` when it is gone (forgotten meanwhile, or its
/// user erased).
pub async fn finish(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    outcome: &Outcome<'_>,
) -> Result<Option<QueryRow>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE inference.queries SET response = $3, sources = $4, model = $5, timings = $6, \
         status = $7, error = $8, finished_at = now() WHERE user_id = $1 AND id = $2 \
         RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(id)
    .bind(outcome.response)
    .bind(Json(outcome.sources))
    .bind(outcome.model)
    .bind(Json(outcome.timings))
    .bind(outcome.status)
    .bind(outcome.error)
    .fetch_optional(pool)
    .await?)
}

/// A query of an older install's history.
pub struct ImportedQuery {
    pub id: Uuid,
    pub user_id: Uuid,
    pub query: String,
    /// Empty when the old app stored none: the record is then `failed`.
    pub response: String,
    pub sources: Vec<StoredSource>,
    pub created_at: DateTime<Utc>,
}

/// What an imported query without a response says.
pub const NO_IMPORTED_RESPONSE: &str = "imported without a response";

/// Inserts the queries not already there (by id) in one statement; returns
/// how many were inserted.
pub async fn insert_imported(pool: &PgPool, queries: &[ImportedQuery]) -> Result<u32> {
    let mut builder = sqlx::QueryBuilder::new(
        "INSERT INTO inference.queries \
         (id, user_id, query, response, sources, status, error, created_at, finished_at) ",
    );
    if queries.is_empty() {
        return Ok(0);
    }
    builder.push_values(queries, |mut row, query| {
        let answered = !query.response.is_empty();
        row.push_bind(query.id)
            .push_bind(query.user_id)
            .push_bind(&query.query)
            .push_bind(&query.response)
            .push_bind(Json(&query.sources))
            .push_bind(if answered { "answered" } else { "failed" })
            .push_bind(if answered { "" } else { NO_IMPORTED_RESPONSE })
            .push_bind(query.created_at)
            .push_bind(query.created_at);
    });
    builder.push(" ON CONFLICT (id) DO NOTHING");
    let inserted = builder.build().execute(pool).await?.rows_affected();
    Ok(u32::try_from(inserted).unwrap_or(u32::MAX))
}

pub async fn get(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<QueryRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM inference.queries WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Newest first, keyset-paginated by (created_at, id).
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<QueryRow>> {
    let (after_time, after_id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM inference.queries WHERE user_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn delete(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool> {
    let done = sqlx::query("DELETE FROM inference.queries WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Erases every query of `user_id` and records the user as erased, so that
/// a question still being answered is not stored afterwards.
pub async fn delete_user(pool: &PgPool, user_id: Uuid) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT inference.record_erased($1)")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM inference.queries WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
