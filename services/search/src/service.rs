//! The search service's logic: storing chunks, keeping the derived indexes
//! in step with `search.chunks`, and hybrid search.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use pai_common::grpc::GrpcChannel;
use pai_common::identity::ServiceCredential;
use pai_common::telemetry::{INGEST_STAGE_SECONDS, SEARCH_STAGE_SECONDS, stage_done};
use pai_proto::v1::EmbedRequest;
use pai_proto::v1::embed_request::Priority;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use uuid::Uuid;

use crate::error::{Result, SearchError};
use crate::index_thread::IndexThread;
use crate::repo::{self, ChunkRow, NewChunk, Source};
use crate::text_index::{Filters, TextIndex};
use crate::vector_index::VectorIndexes;

/// Reciprocal rank fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;
/// In hybrid mode, vector hits less similar than this to the query are
/// noise, not evidence: all-MiniLM-L6-v2 puts unrelated text (and text in
/// a language it does not know) around 0.0-0.2 of a question. Fusing them
/// would outvote a clear BM25 hit.
const HYBRID_MIN_SIMILARITY: f32 = 0.2;
/// Texts per Embed call during ingest.
const EMBED_BATCH: usize = 64;
/// The longest query, in characters: a question fits in far fewer, and
/// each word costs a term lookup in three fields.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// How long a query's embedding may take (indexing's batches get the
/// channel's deadline).
const QUERY_EMBED_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);
/// Characters of a chunk shown when no query word is in it.
const PLAIN_SNIPPET_CHARS: usize = 240;
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

pub struct SearchCore {
    pool: PgPool,
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
    /// when the generation they recorded is not the table's, they are rebuilt.
    /// No user's index is read here: each is opened when first needed, and
    /// at most `open_users_max` idle ones of each kind stay open.
    pub async fn open(
        pool: PgPool,
        dir: PathBuf,
        open_users_max: usize,
        embedder: Embedder,
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
            .and_then(|s| parse_generation(&s));
        let core = Self {
            pool,
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
        };
        let current = repo::generation(&core.pool).await?;
        if on_disk != Some(current) {
            tracing::info!(
                ?on_disk,
                current,
                "search indexes behind search.chunks; rebuilding"
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

    /// Records the generation the on-disk indexes now reflect.
    async fn persist(&self, generation: i64) -> Result<()> {
        let vectors = Arc::clone(&self.vectors);
        let file = self.generation_file.clone();
        blocking(move || {
            vectors.save_dirty()?;
            let partial = file.with_extension("partial");
            std::fs::write(&partial, format!("{INDEX_FORMAT}:{generation}"))?;
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
        let started = Instant::now();
        let mut embeddings = Vec::with_capacity(chunks.len());
        for batch in chunks.chunks(EMBED_BATCH) {
            let texts = batch.iter().map(|c| c.text.clone()).collect();
            embeddings.extend(self.embed(texts, Priority::Bulk).await?);
        }
        let new: Vec<NewChunk> = chunks
            .into_iter()
            .zip(embeddings)
            .map(|(c, embedding)| NewChunk {
                ordinal: c.ordinal,
                page: c.page,
                start: c.start,
                end: c.end,
                text: c.text,
                embedding,
            })
            .collect();
        let started = stage_done(INGEST_STAGE_SECONDS, "embed", started);

        // Chunks keep their ids across a re-index, so until the indexes below
        // commit, their entries (made from the old text) still resolve to
        // rows: a document being re-indexed never drops out of search.
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let replaced = repo::replace_source(&mut tx, &source, &new).await?;
        let generation = repo::bump_generation(&mut tx).await?;
        tx.commit().await?;
        let started = stage_done(INGEST_STAGE_SECONDS, "store", started);

        let count = replaced.chunks.len();
        let user_id = source.user_id;
        let (kind, source_id) = (source.kind.clone(), source.id);
        let chunks = Arc::new((new, replaced));
        let for_vectors = Arc::clone(&chunks);
        self.apply(
            move |text| {
                // Deletes apply to documents added before them: one commit
                // swaps the old entries for the new.
                let (_, replaced) = &*chunks;
                text.delete_source(user_id, &kind, source_id)?;
                text.add(&replaced.chunks)?;
                text.commit()
            },
            move |vectors| {
                let (new, replaced) = &*for_vectors;
                vectors.remove(user_id, &replaced.stale)?;
                let pairs: Vec<(i64, &[f32])> = replaced
                    .chunks
                    .iter()
                    .zip(new)
                    .map(|(row, chunk)| (row.id, chunk.embedding.as_slice()))
                    .collect();
                vectors.add(user_id, &pairs)
            },
        )
        .await?;
        self.persist(generation).await?;
        *applied = generation;
        stage_done(INGEST_STAGE_SECONDS, "index", started);
        Ok(count)
    }

    /// Removes one source's chunks; returns how many there were.
    pub async fn delete_source(&self, user_id: Uuid, kind: &str, source_id: Uuid) -> Result<usize> {
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let ids = repo::delete_source(&mut tx, user_id, kind, source_id).await?;
        let generation = repo::bump_generation(&mut tx).await?;
        tx.commit().await?;
        let count = ids.len();
        let kind = kind.to_owned();
        self.apply(
            move |text| {
                text.delete_source(user_id, &kind, source_id)?;
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
        let mut applied = self.writes.lock().await;
        let mut tx = self.pool.begin().await?;
        let ids = repo::delete_user(&mut tx, user_id).await?;
        let generation = repo::bump_generation(&mut tx).await?;
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

    /// Rebuilds both indexes from `search.chunks`; returns the chunk count.
    pub async fn rebuild(&self) -> Result<u64> {
        let mut applied = self.writes.lock().await;
        let generation = repo::generation(&self.pool).await?;
        self.apply(TextIndex::clear, VectorIndexes::clear).await?;
        let mut after = 0;
        let mut total = 0u64;
        loop {
            let rows = repo::index_rows_after(&self.pool, after, REBUILD_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.chunk.id;
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
        tracing::info!(chunks = total, generation, "search indexes rebuilt");
        Ok(total)
    }

    /// Hybrid search over the caller's chunks only.
    pub async fn search(
        &self,
        user_id: Uuid,
        query: &str,
        k: usize,
        mode: Mode,
        filters: Filters,
    ) -> Result<(Vec<Hit>, f32)> {
        let started = Instant::now();
        let query = query.trim();
        if query.is_empty() {
            return Err(SearchError::Invalid("q: the query is empty".into()));
        }
        if query.chars().nth(MAX_QUERY_CHARS).is_some() {
            return Err(SearchError::QueryTooLong(MAX_QUERY_CHARS));
        }
        let k = k.clamp(1, 50);
        // Vector hits are filtered after the fact: ask for more when filtering.
        let filtered = filters.kind.is_some() || filters.category.is_some();
        let candidates = if filtered {
            (k * 10).max(100)
        } else {
            (k * 4).max(20)
        };
        // The query's embedding takes milliseconds in the inference service;
        // BM25 and the snippet generator are ready by then. The vector
        // search starts as soon as the embedding is there, whether or not
        // BM25 is done.
        let vector_side = async {
            let embedding = match mode {
                Mode::Bm25 => None,
                Mode::Hybrid | Mode::Vector => self
                    .embed(vec![query.to_owned()], Priority::Interactive)
                    .await?
                    .pop(),
            };
            stage_done(SEARCH_STAGE_SECONDS, "embed", started);
            let stage = Instant::now();
            let nearest = match embedding {
                Some(vector) => {
                    let _permit = self.searches.acquire().await?;
                    // Here, not on the blocking pool: a search of one user's
                    // index takes 0.05-0.5 ms (a scan of at most 5,000 vectors,
                    // or the HNSW walk), less than the hand-over to another
                    // thread and back cost at 16 clients (bench-search: 5-6 %
                    // more queries a second for both datasets). Only while the
                    // user's index is closed (it is read from its file) or
                    // being changed does it wait, off this thread.
                    match self.vectors.try_search(user_id, &vector, candidates)? {
                        Some(nearest) => nearest,
                        None => {
                            let vectors = Arc::clone(&self.vectors);
                            blocking(move || vectors.search(user_id, &vector, candidates)).await?
                        }
                    }
                }
                None => Vec::new(),
            };
            stage_done(SEARCH_STAGE_SECONDS, "vector", stage);
            Ok::<_, SearchError>(nearest)
        };
        let text_side = async {
            let stage = Instant::now();
            let text = Arc::clone(&self.text);
            let query = query.to_owned();
            let text_filters = filters.clone();
            // One BM25 search per core at a time, the others waiting their
            // turn in arrival order.
            let _permit = self.text_searches.acquire().await?;
            let found = blocking(move || {
                let bm25 = match mode {
                    Mode::Vector => Vec::new(),
                    Mode::Hybrid | Mode::Bm25 => {
                        text.search(user_id, &query, candidates, &text_filters)?
                    }
                };
                Ok((bm25, text.snippets(user_id, &query)?))
            })
            .await?;
            stage_done(SEARCH_STAGE_SECONDS, "bm25", stage);
            Ok::<_, SearchError>(found)
        };
        let (nearest, (bm25, snippets)) = tokio::try_join!(vector_side, text_side)?;
        let mut nearest: Vec<(i64, f32)> = match mode {
            Mode::Hybrid => nearest
                .into_iter()
                .filter(|(_, distance)| 1.0 - distance >= HYBRID_MIN_SIMILARITY)
                .collect(),
            Mode::Bm25 | Mode::Vector => nearest,
        };
        let stage = Instant::now();

        // BM25 applied the filters inside the index; vector hits are
        // checked against their rows. Rows come from the BM25 index's
        // document store (~10 µs each, on this thread), not from
        // `search.chunks`: at 16 clients the round trip to PostgreSQL took
        // 2.4 ms of each query's time (bench-search (b)).
        let mut rows: HashMap<i64, ChunkRow> = HashMap::new();
        if filtered {
            // Up to a hundred rows: off this thread.
            let ids: Vec<i64> = nearest.iter().map(|(id, _)| *id).collect();
            let text = Arc::clone(&self.text);
            rows.extend(
                blocking(move || text.chunks(user_id, &ids))
                    .await?
                    .into_iter()
                    .filter(|row| filters.admit(&row.source_kind, &row.category))
                    .map(|row| (row.id, row)),
            );
            nearest.retain(|(id, _)| rows.contains_key(id));
        }
        // Only the best k are read: k rows (more only when a chunk was
        // deleted since the vector index saw it).
        let fused = fuse(mode, &bm25, &nearest);
        let mut hits = Vec::with_capacity(k);
        let mut next = fused.as_slice();
        while hits.len() < k && !next.is_empty() {
            let (batch, rest) = next.split_at((k - hits.len()).min(next.len()));
            next = rest;
            let missing: Vec<i64> = batch
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !rows.contains_key(id))
                .collect();
            rows.extend(
                self.text
                    .chunks(user_id, &missing)?
                    .into_iter()
                    .map(|row| (row.id, row)),
            );
            hits.extend(batch.iter().filter_map(|(id, score)| {
                let chunk = rows.remove(id)?;
                let highlighted = snippets
                    .as_ref()
                    .map(|s| s.snippet(&chunk.text).to_html())
                    .unwrap_or_default();
                let snippet = if highlighted.is_empty() {
                    plain_snippet(&chunk.text)
                } else {
                    highlighted
                };
                Some(Hit {
                    chunk,
                    score: *score,
                    snippet,
                })
            }));
        }
        stage_done(SEARCH_STAGE_SECONDS, "hydrate", stage);
        Ok((hits, started.elapsed().as_secs_f32() * 1000.0))
    }
}

/// The start of a chunk that has none of the query's words, as HTML like
/// the highlighted snippets (which tantivy escapes): a chunk's text is the
/// uploader's, and a client shows snippets as markup.
fn plain_snippet(text: &str) -> String {
    let mut html = String::with_capacity(PLAIN_SNIPPET_CHARS + 16);
    for c in text.chars().take(PLAIN_SNIPPET_CHARS) {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#x27;"),
            other => html.push(other),
        }
    }
    html
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

/// The generation a generation file records, when it is of this format.
fn parse_generation(contents: &str) -> Option<i64> {
    let (format, generation) = contents.trim().split_once(':')?;
    if format.parse::<u32>().ok()? != INDEX_FORMAT {
        return None;
    }
    generation.parse().ok()
}

/// Orders chunk ids by mode: BM25 score, cosine similarity, or reciprocal
/// rank fusion of both lists.
fn fuse(mode: Mode, bm25: &[(i64, f32)], nearest: &[(i64, f32)]) -> Vec<(i64, f32)> {
    let mut ranked: Vec<(i64, f32)> = match mode {
        Mode::Bm25 => bm25.to_vec(),
        Mode::Vector => nearest
            .iter()
            .map(|(id, distance)| (*id, 1.0 - distance))
            .collect(),
        Mode::Hybrid => {
            let mut scores: HashMap<i64, f32> = HashMap::new();
            for list in [bm25, nearest] {
                for (rank, (id, _)) in list.iter().enumerate() {
                    *scores.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
                }
            }
            scores.into_iter().collect()
        }
    };
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_of_another_format_are_behind() {
        assert_eq!(parse_generation(&format!("{INDEX_FORMAT}:42\n")), Some(42));
        assert_eq!(parse_generation("42"), None);
        assert_eq!(parse_generation(&format!("{}:42", INDEX_FORMAT + 1)), None);
        assert_eq!(parse_generation("x:y"), None);
    }

    #[test]
    fn a_snippet_without_a_query_word_is_escaped() {
        let text = "<img src=x onerror=alert(1)> Tom & \"Jerry's\" </b>";
        assert_eq!(
            plain_snippet(text),
            "&lt;img src=x onerror=alert(1)&gt; Tom &amp; &quot;Jerry&#x27;s&quot; &lt;/b&gt;"
        );
        let long = "é".repeat(1_000);
        assert_eq!(plain_snippet(&long).chars().count(), PLAIN_SNIPPET_CHARS);
    }

    #[test]
    fn fusion_rewards_agreement() {
        let bm25 = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let nearest = [(2, 0.1), (3, 0.2), (4, 0.3)];
        let fused = fuse(Mode::Hybrid, &bm25, &nearest);
        assert_eq!(fused[0].0, 2, "{fused:?}");
        assert_eq!(fused.len(), 4);
        let only_vector = fuse(Mode::Vector, &bm25, &nearest);
        assert_eq!(
            only_vector.iter().map(|h| h.0).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        let only_bm25 = fuse(Mode::Bm25, &bm25, &nearest);
        assert_eq!(only_bm25[0].0, 1);
    }
}
