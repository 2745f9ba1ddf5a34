//! The documents service's logic: uploads, listing, deletion, and the
//! ingest of one document (extract → classify → chunk → index).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use pai_common::shards::Shards;
use pai_common::telemetry::{INGEST_STAGE_SECONDS, stage_done};
use pai_extract::{Category, ExtractError, Limits};
use pai_proto::v1::{ChunkInput, DeleteSourceRequest, IndexChunksRequest};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::blob::{BlobStore, Incoming};
use crate::error::{DocumentsError, Result};
use crate::repo::{self, DocumentRow, Imported, ListFilter, NewDocument};

pub type SearchClient = pai_common::shards::SearchInternal;

/// The routing key of ingest jobs on the events exchange.
pub const INGEST_ROUTING_KEY: &str = pai_common::amqp::DOCUMENTS_INGEST.routing_key;
const SOURCE_KIND: &str = "document";

/// An ingest job, as published through the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestJob {
    pub document_id: Uuid,
    pub user_id: Uuid,
    /// The trace context of the request that queued it (W3C
    /// `traceparent`), so its ingest shows in that request's trace.
    #[serde(default, skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub trace: std::collections::HashMap<String, String>,
}

/// How the text extractor is started.
#[derive(Debug, Clone)]
pub struct Extractor {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub limits: Limits,
}

/// What became of one ingest attempt.
#[derive(Debug)]
pub enum Outcome {
    Indexed,
    /// The file itself is the problem: the document is marked failed.
    Failed(String),
    /// Something outside the file failed: try again later.
    Retry {
        reason: String,
        attempts: i32,
    },
    /// The document is gone (deleted meanwhile): nothing to do.
    Gone,
}

pub struct DocumentsCore {
    pub(crate) pool: PgPool,
    pub(crate) blobs: BlobStore,
    /// A client per search shard.
    pub(crate) search: Shards<SearchClient>,
    pub(crate) max_file_size: u64,
    pub(crate) extractor: Extractor,
}

/// Returns a title from the file name: its stem, with separators as spaces.
fn title_of(filename: &str) -> String {
    let stem = filename.rsplit_once('.').map_or(filename, |(stem, _)| stem);
    let title: String = stem
        .chars()
        .map(|c| if c == '_' || c == '-' { ' ' } else { c })
        .collect();
    let title = title.trim();
    if title.is_empty() {
        "Untitled".to_owned()
    } else {
        title.chars().take(200).collect()
    }
}

/// Keeps only the last path component of a client-supplied file name,
/// without control characters (PostgreSQL's text cannot hold NUL).
fn clean_filename(filename: &str) -> String {
    let name: String = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let name = name.trim();
    if name.is_empty() {
        "document.pdf".to_owned()
    } else {
        name.chars().take(255).collect()
    }
}

impl DocumentsCore {
    /// Starts receiving a file, as a new document or as the document `id`
    /// of an older install.
    pub async fn begin_upload(&self, user_id: Uuid, id: Option<Uuid>) -> Result<(Uuid, Incoming)> {
        let id = id.unwrap_or_else(Uuid::new_v4);
        let incoming = self.blobs.create(user_id, id, self.max_file_size).await?;
        Ok((id, incoming))
    }

    /// Stores a received file's document row and its ingest job together.
    pub async fn finish_upload(
        &self,
        user_id: Uuid,
        id: Uuid,
        filename: &str,
        title: &str,
        imported: Option<&Imported>,
        incoming: Incoming,
    ) -> Result<DocumentRow> {
        let (bytes, sha256) = match incoming.finish().await {
            Ok(done) => done,
            // The erasure may have removed the user's folder under this upload.
            Err(err) if repo::is_erased(&self.pool, user_id).await? => {
                tracing::info!(%user_id, error = %err, "upload of an erased user refused");
                self.blobs.delete_user(user_id).await?;
                return Err(DocumentsError::Erased);
            }
            Err(err) => return Err(err),
        };
        let filename = clean_filename(filename);
        let title = if title.trim().is_empty() {
            title_of(&filename)
        } else {
            title.trim().chars().take(200).collect()
        };
        let new = NewDocument {
            id,
            user_id,
            title: &title,
            filename: &filename,
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            sha256: &sha256,
            imported,
        };
        let row = match self.record_upload(&new).await {
            Ok(row) => row,
            Err(err) => {
                // Without its row the file would be an orphan; an erased
                // user's folder goes whole (this upload may have made it
                // again after the erasure removed it).
                let cleanup = if matches!(err, DocumentsError::Erased) {
                    self.blobs.delete_user(user_id).await
                } else {
                    self.blobs.delete(user_id, id).await
                };
                if let Err(cleanup) = cleanup {
                    tracing::warn!(error = %cleanup, "removing an unrecorded upload failed");
                }
                return Err(err);
            }
        };
        tracing::info!(document_id = %id, %user_id, bytes, "document uploaded");
        Ok(row)
    }

    /// Inserts the document and its ingest job in one transaction, unless
    /// the user was erased.
    async fn record_upload(&self, new: &NewDocument<'_>) -> Result<DocumentRow> {
        let mut tx = self.pool.begin().await?;
        if !repo::lock_unerased(&mut tx, new.user_id).await? {
            return Err(DocumentsError::Erased);
        }
        let row = repo::insert(&mut tx, new).await?;
        enqueue(&mut tx, new.user_id, new.id).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Removes a document's chunks from the search service.
    async fn unindex(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        self.search
            .for_user(user_id)
            .delete_source(DeleteSourceRequest {
                user_id: user_id.to_string(),
                source_kind: SOURCE_KIND.to_owned(),
                source_id: id.to_string(),
                more_source_ids: Vec::new(),
            })
            .await
            .map_err(|s| DocumentsError::Search(s.message().to_owned()))?;
        Ok(())
    }

    pub async fn get(&self, user_id: Uuid, id: Uuid) -> Result<DocumentRow> {
        repo::get(&self.pool, user_id, id)
            .await?
            .ok_or(DocumentsError::NotFound)
    }

    pub async fn list(
        &self,
        user_id: Uuid,
        category: Option<&str>,
        status: Option<&str>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<DocumentRow>> {
        repo::list(
            &self.pool,
            user_id,
            &ListFilter {
                category,
                status,
                after,
                limit: i64::from(limit.clamp(1, 200)),
            },
        )
        .await
    }

    /// Returns the path of the original file, after checking ownership.
    pub async fn file(&self, user_id: Uuid, id: Uuid) -> Result<(DocumentRow, PathBuf)> {
        let row = self.get(user_id, id).await?;
        Ok((row, self.blobs.path(user_id, id)))
    }

    /// Removes the document's index entries, row and file.
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        self.get(user_id, id).await?;
        self.unindex(user_id, id).await?;
        let mut conn = self.pool.acquire().await?;
        if !repo::delete(&mut conn, user_id, id).await? {
            return Err(DocumentsError::NotFound);
        }
        self.blobs.delete(user_id, id).await?;
        tracing::info!(document_id = %id, %user_id, "document deleted");
        Ok(())
    }

    pub async fn reprocess(&self, user_id: Uuid, id: Uuid) -> Result<DocumentRow> {
        let mut tx = self.pool.begin().await?;
        if !repo::lock_unerased(&mut tx, user_id).await? {
            return Err(DocumentsError::Erased);
        }
        let row = repo::requeue(&mut tx, user_id, id)
            .await?
            .ok_or(DocumentsError::NotFound)?;
        enqueue(&mut tx, user_id, id).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Erases every document of a deleted user: records the erasure (so no
    /// later upload or reprocess of theirs is recorded), deletes the rows and
    /// queued jobs, then the files.
    pub async fn delete_user(&self, user_id: Uuid) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let removed = repo::erase_user(&mut tx, user_id).await?;
        tx.commit().await?;
        self.blobs.delete_user(user_id).await?;
        Ok(removed)
    }

    /// Runs one ingest attempt of `job`.
    pub async fn process(&self, job: &IngestJob) -> Result<Outcome> {
        let Some(row) = repo::start_attempt(&self.pool, job.user_id, job.document_id).await? else {
            return Ok(Outcome::Gone);
        };
        let path = self.blobs.path(job.user_id, job.document_id);
        let args: Vec<&str> = self.extractor.args.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let extracted = pai_extract::extract_isolated(
            &self.extractor.program,
            &args,
            &path,
            &self.extractor.limits,
        )
        .await;
        stage_done(INGEST_STAGE_SECONDS, "extract", started);
        let pages = match extracted {
            Ok(pages) => pages,
            Err(err) if err.is_transient() => {
                return Ok(Outcome::Retry {
                    reason: err.to_string(),
                    attempts: row.attempts,
                });
            }
            Err(err) => {
                let reason = user_reason(&err);
                tracing::info!(document_id = %row.id, error = %err, "document failed");
                repo::mark_failed(&self.pool, row.user_id, row.id, &reason).await?;
                // A reprocessed document must not stay searchable by its old text.
                if row.chunks > 0 {
                    self.unindex(row.user_id, row.id).await?;
                }
                return Ok(Outcome::Failed(reason));
            }
        };
        let category: Category = pai_extract::classify(&row.title, &pages);
        let chunks = pai_extract::chunk(
            &pages,
            pai_extract::DEFAULT_TARGET_WORDS,
            pai_extract::DEFAULT_OVERLAP_WORDS,
        );
        let request = IndexChunksRequest {
            user_id: row.user_id.to_string(),
            source_kind: SOURCE_KIND.to_owned(),
            source_id: row.id.to_string(),
            title: row.title.clone(),
            category: category.as_str().to_owned(),
            chunks: chunks
                .iter()
                .map(|c| ChunkInput {
                    ordinal: c.ordinal,
                    page: c.page,
                    start: u32::try_from(c.start).unwrap_or(u32::MAX),
                    end: u32::try_from(c.end).unwrap_or(u32::MAX),
                    text: c.text.clone(),
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let indexed = self
            .search
            .for_user(row.user_id)
            .index_chunks(request)
            .await;
        stage_done(INGEST_STAGE_SECONDS, "index_call", started);
        if let Err(status) = indexed {
            return Ok(Outcome::Retry {
                reason: format!("indexing failed: {}", status.message()),
                attempts: row.attempts,
            });
        }
        let page_count = i32::try_from(pages.len()).unwrap_or(i32::MAX);
        let chunk_count = i32::try_from(chunks.len()).unwrap_or(i32::MAX);
        let still_there = repo::mark_indexed(
            &self.pool,
            row.user_id,
            row.id,
            category.as_str(),
            page_count,
            chunk_count,
        )
        .await?;
        if !still_there {
            // Deleted (or its owner was) while we indexed: take the chunks back.
            self.unindex(row.user_id, row.id).await?;
            return Ok(Outcome::Gone);
        }
        tracing::info!(document_id = %row.id, pages = page_count, chunks = chunk_count, category = category.as_str(), "document indexed");
        Ok(Outcome::Indexed)
    }

    pub async fn mark_failed(&self, job: &IngestJob, reason: &str) -> Result<()> {
        repo::mark_failed(&self.pool, job.user_id, job.document_id, reason).await
    }
}

/// The failure reason shown to the user; parser details stay in the log.
fn user_reason(err: &ExtractError) -> String {
    match err {
        ExtractError::Corrupt(_) | ExtractError::Crashed(_) => {
            "corrupt PDF (the file is damaged or truncated)".to_owned()
        }
        ExtractError::Encrypted
        | ExtractError::NoTextLayer
        | ExtractError::NotPdf
        | ExtractError::TimedOut
        | ExtractError::Io(_) => err.to_string(),
    }
}

async fn enqueue(conn: &mut sqlx::PgConnection, user_id: Uuid, document_id: Uuid) -> Result<()> {
    let job = IngestJob {
        document_id,
        user_id,
        trace: pai_common::trace_context::carrier(),
    };
    let payload = serde_json::to_value(&job).map_err(|e| DocumentsError::Invalid(e.to_string()))?;
    repo::insert_outbox(conn, INGEST_ROUTING_KEY, &payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_file_names_are_cleaned() {
        assert_eq!(title_of("fin_aws_invoice_2014.pdf"), "fin aws invoice 2014");
        assert_eq!(title_of(".pdf"), "Untitled");
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\docs\\a.pdf"), "a.pdf");
        assert_eq!(clean_filename("in\0voice\n.pdf"), "invoice.pdf");
        assert_eq!(clean_filename("\0\u{7}"), "document.pdf");
        assert_eq!(clean_filename(""), "document.pdf");
    }
}
