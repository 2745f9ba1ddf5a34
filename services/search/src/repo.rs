//! SQL over schema `search`. Every query on user data filters by user id.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use pai_common::shards::Shard;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::{Result, SearchError};

/// A chunk ready to store: its text, where it came from, its embedding.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub ordinal: i32,
    pub page: i32,
    pub start: i32,
    pub end: i32,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// Which source a set of chunks belongs to.
#[derive(Debug, Clone)]
pub struct Source {
    pub user_id: Uuid,
    pub kind: String,
    pub id: Uuid,
    pub title: String,
    pub category: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChunkRow {
    pub id: i64,
    pub user_id: Uuid,
    pub source_kind: String,
    pub source_id: Uuid,
    pub ordinal: i32,
    pub title: String,
    pub category: String,
    pub page: i32,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A row for rebuilding the indexes, with its vector.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndexRow {
    #[sqlx(flatten)]
    pub chunk: ChunkRow,
    pub embedding: Vec<f32>,
}

/// Rows per INSERT statement (12 parameters each, PostgreSQL allows 65535).
const INSERT_BATCH: usize = 1000;

/// Bumps `shard`'s change counter; returns the new generation.
pub async fn bump_generation(conn: &mut PgConnection, shard: Shard) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO search.shard_generations AS g (shards, shard, value) VALUES ($1, $2, 1) \
         ON CONFLICT (shards, shard) DO UPDATE SET value = g.value + 1 RETURNING value",
    )
    .bind(i32_of(shard.count))
    .bind(i32_of(shard.index))
    .fetch_one(conn)
    .await?)
}

/// `shard`'s change counter (0 before its first change).
pub async fn generation(pool: &PgPool, shard: Shard) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT value FROM search.shard_generations \
         WHERE shards = $1 AND shard = $2), 0)",
    )
    .bind(i32_of(shard.count))
    .bind(i32_of(shard.index))
    .fetch_one(pool)
    .await?)
}

fn i32_of(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Deletes a source's chunks and returns their ids.
pub async fn delete_sources(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: &str,
    source_ids: &[Uuid],
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "DELETE FROM search.chunks WHERE user_id = $1 AND source_kind = $2 \
         AND source_id = ANY($3) RETURNING id",
    )
    .bind(user_id)
    .bind(kind)
    .bind(source_ids)
    .fetch_all(conn)
    .await?)
}

pub async fn delete_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<i64>> {
    // Recorded first, under the user's exclusive lock: a write of theirs
    // either committed before (and is deleted below) or is refused after.
    sqlx::query("SELECT search.record_erased($1)")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(
        sqlx::query_scalar("DELETE FROM search.chunks WHERE user_id = $1 RETURNING id")
            .bind(user_id)
            .fetch_all(conn)
            .await?,
    )
}

/// What replacing a source's chunks did to the table.
#[derive(Debug, Default)]
pub struct Replaced {
    /// The rows of the new chunks as stored, in input order.
    pub chunks: Vec<ChunkRow>,
    /// Ids of the source's chunks whose ordinals the new version no longer
    /// has: deleted, their vectors to drop.
    pub dropped: Vec<i64>,
}

/// Replaces a source's chunks: a chunk keeps its id when its ordinal was
/// there before (so an index entry made from the old text still resolves
/// until the indexes catch up, and the indexes replace it in place),
/// ordinals no longer produced are deleted.
pub async fn replace_source(
    conn: &mut PgConnection,
    source: &Source,
    chunks: &[NewChunk],
) -> Result<Replaced> {
    let ordinals: Vec<i32> = chunks.iter().map(|c| c.ordinal).collect();
    let mut seen = HashSet::with_capacity(ordinals.len());
    if !ordinals.iter().all(|ordinal| seen.insert(*ordinal)) {
        return Err(SearchError::Invalid(
            "chunks: two chunks have the same ordinal".into(),
        ));
    }
    // The source's rows are locked first, so two replacements of one
    // source take turns.
    sqlx::query(
        "SELECT id FROM search.chunks WHERE user_id = $1 AND source_kind = $2 AND source_id = $3 \
         FOR UPDATE",
    )
    .bind(source.user_id)
    .bind(&source.kind)
    .bind(source.id)
    .execute(&mut *conn)
    .await?;
    let dropped: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM search.chunks WHERE user_id = $1 AND source_kind = $2 AND source_id = $3 \
         AND ordinal <> ALL($4) RETURNING id",
    )
    .bind(source.user_id)
    .bind(&source.kind)
    .bind(source.id)
    .bind(&ordinals)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_ordinal = HashMap::with_capacity(chunks.len());
    for batch in chunks.chunks(INSERT_BATCH) {
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO search.chunks (user_id, source_kind, source_id, ordinal, title, category, \
             page, start_offset, end_offset, text, embedding) ",
        );
        query.push_values(batch, |mut row, chunk| {
            row.push_bind(source.user_id)
                .push_bind(&source.kind)
                .push_bind(source.id)
                .push_bind(chunk.ordinal)
                .push_bind(&source.title)
                .push_bind(&source.category)
                .push_bind(chunk.page)
                .push_bind(chunk.start)
                .push_bind(chunk.end)
                .push_bind(&chunk.text)
                .push_bind(&chunk.embedding);
        });
        query.push(
            " ON CONFLICT (user_id, source_kind, source_id, ordinal) DO UPDATE SET \
             title = EXCLUDED.title, category = EXCLUDED.category, page = EXCLUDED.page, \
             start_offset = EXCLUDED.start_offset, end_offset = EXCLUDED.end_offset, \
             text = EXCLUDED.text, embedding = EXCLUDED.embedding \
             RETURNING ordinal, id, created_at",
        );
        let rows: Vec<(i32, i64, DateTime<Utc>)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        by_ordinal.extend(
            rows.into_iter()
                .map(|(ordinal, id, at)| (ordinal, (id, at))),
        );
    }
    let chunks = chunks
        .iter()
        .map(|chunk| {
            let (id, created_at) = by_ordinal.get(&chunk.ordinal).copied().ok_or_else(|| {
                SearchError::Invalid(format!("chunk ordinal {} was not stored", chunk.ordinal))
            })?;
            Ok(ChunkRow {
                id,
                user_id: source.user_id,
                source_kind: source.kind.clone(),
                source_id: source.id,
                ordinal: chunk.ordinal,
                title: source.title.clone(),
                category: source.category.clone(),
                page: chunk.page,
                text: chunk.text.clone(),
                created_at,
            })
        })
        .collect::<Result<Vec<ChunkRow>>>()?;
    Ok(Replaced { chunks, dropped })
}

/// One page of every chunk, by id, for rebuilding the indexes.
pub async fn index_rows_after(pool: &PgPool, after_id: i64, limit: i64) -> Result<Vec<IndexRow>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, source_kind, source_id, ordinal, title, category, page, text, \
         created_at, embedding FROM search.chunks WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
