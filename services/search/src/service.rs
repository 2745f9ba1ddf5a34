//! The search service's logic: storing chunks, keeping the derived indexes
//! in step with `search.chunks`, and hybrid search.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use pai_common::grpc::GrpcChannel;
use pai_common::identity::ServiceCredential;
use pai_common::shards::Shard;
use pai_common::telemetry::{INGEST_STAGE_SECONDS, stage_done};
use pai_proto::v1::EmbedRequest;
use pai_proto::v1::embed_request::Priority;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use uuid::Uuid;

use crate::error::{Result, SearchError};
use crate::index_thread::IndexThread;
use crate::repo::{self, ChunkRow, NewChunk, Source};
use crate::text_index::TextIndex;
use crate::vector_index::VectorIndexes;

mod query;
#[cfg(test)]
mod reindex_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use self::query::MAX_QUERY_CHARS;

/// Texts per Embed call during ingest.
const EMBED_BATCH: usize = 64;
/// How long a query's embedding may take (indexing's batches get the
/// channel's deadline).
const QUERY_EMBED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);
const REBUILD_PAGE: i64 = 2_000;
/// The on-disk indexes' layout. Bumped when the BM25 schema or analysis
/// changes: indexes of another format are thrown away and rebuilt from
/// `search.chunks` on start. 2: stems, compound parts and page fields;
/// 3: the chunk id as a fast field; 4: vectors stored as F16; 5: vectors
/// compared by inner product, each chunk's row in the document store;
/// 6: one BM25 index per user.
const INDEX_FORMAT: u32 = 6;

pub type Embedder = InferenceInternalClient<InterceptedService<GrpcChannel, ServiceCredential>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Bm25,
    Vector,
}

/// One user's part of an index change: the new vectors by chunk id, and
/// the ids of chunks their sources no longer have.
#[derive(Debug, Default)]
struct VectorChanges {
    added: Vec<(i64, Vec<f32>)>,
    dropped: Vec<i64>,
}

/// A chunk to index, before embedding.
#[derive(Debug, Clone)]
pub struct ChunkText {
    pub ordinal: i32,
    pub page: i32,
    pub start: i32,
    pub end: i32,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: ChunkRow,
    pub score: f32,
    pub snippet: String,
}

/// The moments of a re-index ([`SearchCore::index_chunks`]) between
/// which the indexes stand still: a test stops the change at each and
/// searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Moment {
    /// The new rows are committed in `search.chunks`; neither index changed.
    Stored,
    /// The BM25 index is about to change.
    TextStarting,
    /// The BM25 index committed the new version.
    TextCommitted,
    /// The vector index is about to change.
    VectorsStarting,
    /// The new version's vectors are in, each in place of the old one of
    /// its id; the vectors of chunks it no longer has are still there.
    VectorsPut,
    /// Those are gone too.
    VectorsDone,
}

/// What a test runs at each [`Moment`]; the change waits for it.
#[cfg(test)]
pub(crate) type Pause =
    Arc<dyn Fn(Moment) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

pub struct SearchCore {
    pool: PgPool,
    /// The users this replica indexes and serves (all, unsharded).
    shard: Shard,
    text: Arc<TextIndex>,
    vectors: Arc<VectorIndexes>,
    embedder: Embedder,
    /// Runs tantivy's writes, below normal priority.
    index_thread: IndexThread,
    /// Serialises changes so indexes apply them in generation order.
    writes: tokio::sync::Mutex<i64>,
    /// Bounds concurrent index searches (usearch's thread contexts).
    searches: tokio::sync::Semaphore,
    generation_file: PathBuf,
    /// Bounds concurrent BM25 searches to the cores: each is a thread of the
    /// blocking pool, and with one per query at 16 clients, ~20 runnable
    /// threads shared two cores, the async workers (HTTP, gRPC) and the
    /// model's among them, which widened the tail (bench-search (b): p99
    /// 36-37 against 38-44 ms; one at a time starved (b), 56 ms).
    text_searches: tokio::sync::Semaphore,
    #[cfg(test)]
    pause: Option<Pause>,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SearchError::VectorIndex(format!("index task failed: {e}")))?
}

impl SearchCore {
    /// Opens the indexes under `dir` and catches them up with the table:
    /// when the generation they recorded is not the table's for `shard`
    /// (or they were built for another shard), they are rebuilt from the
    /// rows of the shard's users. No user's index is read here: each is
    /// opened when first needed, and at most `open_users_max` idle ones of
    /// each kind stay open.
    pub async fn open(
        pool: PgPool,
        dir: PathBuf,
        open_users_max: usize,
        embedder: Embedder,
        shard: Shard,
    ) -> Result<Self> {
        let text_dir = text_index_dir(&dir);
        let vector_dir = dir.join("vectors");
        remove_other_formats(&dir, &text_dir)?;
        // The writers start on the index thread, so tantivy's threads
        // inherit its priority.
        let index_thread = IndexThread::start()?;
        let (text, vectors) = tokio::try_join!(
            index_thread.run(move || TextIndex::open(&text_dir, open_users_max)),
            blocking(move || VectorIndexes::open(&vector_dir, open_users_max)),
        )?;
        let generation_file = dir.join("generation");
        let on_disk = std::fs::read_to_string(&generation_file)
            .ok()
            .and_then(|s| parse_generation(&s, shard));
        let core = Self {
            pool,
            shard,
            text: Arc::new(text),
            vectors: Arc::new(vectors),
            embedder,
            index_thread,
            writes: tokio::sync::Mutex::new(on_disk.unwrap_or(-1)),
            searches: tokio::sync::Semaphore::new(crate::vector_index::MAX_CONCURRENT_SEARCHES),
            generation_file,
            text_searches: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            ),
            #[cfg(test)]
            pause: None,
        };
        let current = repo::generation(&core.pool, shard).await?;
        if on_disk != Some(current) {
            tracing::info!(
                ?on_disk,
                current,
                %shard,
                "search indexes behind search.chunks, or of another shard; rebuilding"
            );
            core.rebuild().await?;
        }
        Ok(core)
    }

    async fn embed(&self, texts: Vec<String>, priority: Priority) -> Result<Vec<Vec<f32>>> {
        let expected = texts.len();
        let mut request = tonic::Request::new(EmbedRequest {
            texts,
            priority: priority as i32,
        });
        if priority == Priority::Interactive {
            request.set_timeout(QUERY_EMBED_DEADLINE);
        }
        let response = self
            .embedder
            .clone()
            .embed(request)
            .await
            .map_err(|status| SearchError::Embedding(status.message().to_owned()))?
            .into_inner();
        if response.embeddings.len() != expected {
            return Err(SearchError::Embedding(format!(
                "asked for {expected} embeddings, got {}",
                response.embeddings.len()
            )));
        }
        Ok(response.embeddings.into_iter().map(|e| e.values).collect())
    }

    /// Where a change stands; a test stops it there.
    async fn reached(&self, moment: Moment) {
        #[cfg(test)]
        if let Some(pause) = &self.pause {
            pause(moment).await;
        }
        #[cfg(not(test))]
        let _ = moment;
    }

    /// Records the generation the on-disk indexes now reflect.
    async fn persist(&self, generation: i64) -> Result<()> {
        let shard = self.shard;
        let vectors = Arc::clone(&self.vectors);
        let file = self.generation_file.clone();
        blocking(move || {
            vectors.save_dirty()?;
            let partial = file.with_extension("partial");
            std::fs::write(&partial, generation_record(shard, generation))?;
            std::fs::rename(&partial, &file)?;
            Ok(())
        })
        .await
    }

    /// Applies one change to both indexes side by side: tantivy's part on
    /// the niced index thread, usearch's at normal priority (changing a
    /// user's vectors holds the lock that user's searches wait for, and a
    /// niced holder would make them wait on it).
    async fn apply(
        &self,
        text_work: impl FnOnce(&TextIndex) -> Result<()> + Send + 'static,
        vector_work: impl FnOnce(&VectorIndexes) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let text = Arc::clone(&self.text);
        let vectors = Arc::clone(&self.vectors);
        tokio::try_join!(
            self.index_thread.run(move || text_work(&text)),
            blocking(move || vector_work(&vectors)),
        )?;
        Ok(())
    }

    /// Replaces every chunk of `source` (an idempotent upsert per source).
    pub async fn index_chunks(&self, source: Source, chunks: Vec<ChunkText>) -> Result<usize> {
        self.index_sources(vec![(source, chunks)]).await
    }

    /// Replaces every chunk of each source, as [`Self::index_chunks`] does
    /// one: the chunks embedded together in bulk batches, stored in one
    /// transaction and applied to each index in one commit, so a thousand
    /// small sources (emails) cost about what one large one does.
    pub async fn index_sources(&self, sources: Vec<(Source, Vec<ChunkText>)>) -> Result<usize> {
        for (source, _) in &sources {
            self.check_owner(source.user_id)?;
        }
        let started = Instant::now();
        let texts: Vec<String> = sources
            .iter()
            .flat_map(|(_, chunks)| chunks.iter().map(|c| c.text.clone()))
            .collect();
        let mut embeddings = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            embeddings.extend(self.embed(batch.to_vec(), Priority::Bulk).await?);
        }
        let mut embeddings = embeddings.into_iter();
        let sources: Vec<(Source, Vec<NewChunk>)> = sources
            .into_iter()
            .map(|(source, chunks)| {
                let new = chunks
                    .into_iter()
                    .zip(embeddings.by_ref())
                    .map(|(c, embedding)| NewChunk {
                        ordinal: c.ordinal,
                        page: c.page,
                        start: c.start,
                        end: c.end,
                        text: c.text,
                        embedding,
                    })
                    .collect();
                (source, new)
            })
            .collect();
        let started = stage_done(INGEST_STAGE_SECONDS, "embed", started);

        // Chunks keep their ids across a re-index (by ordinal), and each
        // index swaps a kept id's entry for the new one in place: the BM25
        // index in one commit, the vector index key by key under its lock.
        // So at every moment until both are done, a search finds the
        // sources' chunks, old or new, and a hit resolves in the BM25
        // snapshot it was read from (`query.rs`).
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut replaced = Vec::with_capacity(sources.len());
        for (source, new) in sources {
            let stored = repo::replace_source(&mut tx, &source, &new).await?;
            replaced.push((source, new, stored));
        }
        let generation = repo::bump_generation(&mut tx, self.shard).await?;
        tx.commit().await?;
        let started = stage_done(INGEST_STAGE_SECONDS, "store", started);
        self.reached(Moment::Stored).await;

        let mut count = 0;
        let mut deletes = Vec::with_capacity(replaced.len());
        let mut rows = Vec::new();
        let mut vectors: HashMap<Uuid, VectorChanges> = HashMap::new();
        for (source, new, stored) in replaced {
            count += stored.chunks.len();
            let user = vectors.entry(source.user_id).or_default();
            user.added.extend(
                stored
                    .chunks
                    .iter()
                    .zip(new)
                    .map(|(row, chunk)| (row.id, chunk.embedding)),
            );
            user.dropped.extend(stored.dropped);
            rows.extend(stored.chunks);
            deletes.push((source.user_id, source.kind, source.id));
        }
        let text_side = async {
            self.reached(Moment::TextStarting).await;
            let text = Arc::clone(&self.text);
            self.index_thread
                .run(move || {
                    // Deletes apply to documents added before them: one
                    // commit swaps the old entries for the new.
                    for (user_id, kind, id) in &deletes {
                        text.delete_source(*user_id, kind, *id)?;
                    }
                    text.add(&rows)?;
                    text.commit()
                })
                .await?;
            self.reached(Moment::TextCommitted).await;
            Ok::<_, SearchError>(())
        };
        let vector_side = async {
            self.reached(Moment::VectorsStarting).await;
            let index = Arc::clone(&self.vectors);
            let dropped = blocking(move || {
                let mut dropped = Vec::with_capacity(vectors.len());
                for (user_id, changes) in vectors {
                    let pairs: Vec<(i64, &[f32])> = changes
                        .added
                        .iter()
                        .map(|(id, embedding)| (*id, embedding.as_slice()))
                        .collect();
                    index.add(user_id, &pairs)?;
                    dropped.push((user_id, changes.dropped));
                }
                Ok(dropped)
            })
            .await?;
            self.reached(Moment::VectorsPut).await;
            let index = Arc::clone(&self.vectors);
            blocking(move || {
                for (user_id, gone) in dropped {
                    index.remove(user_id, &gone)?;
                }
                Ok(())
            })
            .await?;
            self.reached(Moment::VectorsDone).await;
            Ok::<_, SearchError>(())
        };
        tokio::try_join!(text_side, vector_side)?;
        self.persist(generation).await?;
        *applied = generation;
        stage_done(INGEST_STAGE_SECONDS, "index", started);
        Ok(count)
    }

    /// Removes one source's chunks; returns how many there were.
    pub async fn delete_sources(
        &self,
        user_id: Uuid,
        kind: &str,
        source_ids: Vec<Uuid>,
    ) -> Result<usize> {
        self.check_owner(user_id)?;
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let ids = repo::delete_sources(&mut tx, user_id, kind, &source_ids).await?;
        let generation = repo::bump_generation(&mut tx, self.shard).await?;
        tx.commit().await?;
        let count = ids.len();
        let kind = kind.to_owned();
        self.apply(
            move |text| {
                for source_id in &source_ids {
                    text.delete_source(user_id, &kind, *source_id)?;
                }
                text.commit()
            },
            move |vectors| vectors.remove(user_id, &ids),
        )
        .await?;
        self.persist(generation).await?;
        *applied = generation;
        Ok(count)
    }

    /// Erases everything of a user: rows, BM25 entries, the vector index file.
    pub async fn delete_user(&self, user_id: Uuid) -> Result<usize> {
        self.check_owner(user_id)?;
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let ids = repo::delete_user(&mut tx, user_id).await?;
        let generation = repo::bump_generation(&mut tx, self.shard).await?;
        tx.commit().await?;
        self.apply(
            move |text| text.erase_user(user_id),
            move |vectors| vectors.delete_user(user_id),
        )
        .await?;
        self.persist(generation).await?;
        *applied = generation;
        Ok(ids.len())
    }

    /// Rebuilds both indexes from the rows of this shard's users in
    /// `search.chunks` (dropping every other user's); returns the chunk
    /// count.
    pub async fn rebuild(&self) -> Result<u64> {
        let mut applied = self.writes.lock().await;
        let generation = repo::generation(&self.pool, self.shard).await?;
        self.apply(TextIndex::clear, VectorIndexes::clear).await?;
        let mut after = 0;
        let mut total = 0u64;
        loop {
            let rows = repo::index_rows_after(&self.pool, after, REBUILD_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.chunk.id;
            let shard = self.shard;
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|row| shard.owns(row.chunk.user_id))
                .collect();
            total += rows.len() as u64;
            let rows = Arc::new(rows);
            let for_vectors = Arc::clone(&rows);
            self.apply(
                move |text| text.add(rows.iter().map(|r| &r.chunk)),
                move |vectors| {
                    let mut by_user: HashMap<Uuid, Vec<(i64, &[f32])>> = HashMap::new();
                    for r in for_vectors.iter() {
                        by_user
                            .entry(r.chunk.user_id)
                            .or_default()
                            .push((r.chunk.id, r.embedding.as_slice()));
                    }
                    for (user_id, pairs) in by_user {
                        vectors.add(user_id, &pairs)?;
                    }
                    Ok(())
                },
            )
            .await?;
        }
        self.apply(TextIndex::commit, |_| Ok(())).await?;
        self.persist(generation).await?;
        *applied = generation;
        tracing::info!(chunks = total, generation, shard = %self.shard, "search indexes rebuilt");
        Ok(total)
    }

    /// The users this replica serves.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Refuses a user another shard owns.
    pub(crate) fn check_owner(&self, user: Uuid) -> Result<()> {
        if self.shard.owns(user) {
            return Ok(());
        }
        Err(SearchError::NotOwner {
            user,
            owner: pai_common::shards::owner(user, self.shard.count),
            shard: self.shard,
        })
    }
}

/// Where the BM25 index of this format lives under `VECTOR_DB_PATH`.
pub fn text_index_dir(dir: &std::path::Path) -> PathBuf {
    dir.join(format!("text-{INDEX_FORMAT}"))
}

/// Removes BM25 indexes of other formats (`text` was format 1).
fn remove_other_formats(dir: &std::path::Path, current: &std::path::Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if (name == "text" || name.starts_with("text-")) && path != current && path.is_dir() {
            tracing::info!(dir = %path.display(), "removing a BM25 index of another format");
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// What the generation file records: the format, the shard (unsharded:
/// nothing, as before sharding) and the generation.
fn generation_record(shard: Shard, generation: i64) -> String {
    if shard == Shard::ONLY {
        format!("{INDEX_FORMAT}:{generation}")
    } else {
        format!(
            "{INDEX_FORMAT}:{}/{}:{generation}",
            shard.index, shard.count
        )
    }
}

/// The generation a generation file records, when it is of this format
/// and `shard`.
fn parse_generation(contents: &str, shard: Shard) -> Option<i64> {
    let (format, rest) = contents.trim().split_once(':')?;
    if format.parse::<u32>().ok()? != INDEX_FORMAT {
        return None;
    }
    let (recorded, generation) = match rest.split_once(':') {
        Some((layout, generation)) => {
            let (index, count) = layout.split_once('/')?;
            let recorded = Shard {
                index: index.parse().ok()?,
                count: count.parse().ok()?,
            };
            (recorded, generation)
        }
        None => (Shard::ONLY, rest),
    };
    if recorded != shard {
        return None;
    }
    generation.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_of_another_format_are_behind() {
        let only = Shard::ONLY;
        assert_eq!(
            parse_generation(&format!("{INDEX_FORMAT}:42\n"), only),
            Some(42)
        );
        assert_eq!(parse_generation("42", only), None);
        assert_eq!(
            parse_generation(&format!("{}:42", INDEX_FORMAT + 1), only),
            None
        );
        assert_eq!(parse_generation("x:y", only), None);
    }

    #[test]
    fn indexes_of_another_shard_are_behind() {
        let one_of_three = Shard { index: 1, count: 3 };
        let record = generation_record(one_of_three, 7);
        assert_eq!(parse_generation(&record, one_of_three), Some(7));
        for other in [
            Shard::ONLY,
            Shard { index: 1, count: 4 },
            Shard { index: 0, count: 3 },
        ] {
            assert_eq!(parse_generation(&record, other), None, "{other}");
        }
        assert_eq!(
            parse_generation(&generation_record(Shard::ONLY, 7), one_of_three),
            None
        );
    }
}
