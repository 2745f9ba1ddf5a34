//! The query path: a hybrid search over the caller's chunks, its BM25
//! hits ranked, hydrated and highlighted from one snapshot of their BM25
//! index, its vector hits hydrated from that snapshot too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use pai_common::telemetry::{SEARCH_STAGE_SECONDS, stage_done};
use pai_proto::v1::embed_request::Priority;
use uuid::Uuid;

use super::{Hit, Mode, SearchCore, blocking};
use crate::error::{Result, SearchError};
use crate::repo::ChunkRow;
use crate::text_index::Filters;

/// Reciprocal rank fusion constant (Cormack et al.).
const RRF_K: f32 = 60.0;
/// In hybrid mode, vector hits less similar than this to the query are
/// noise, not evidence: all-MiniLM-L6-v2 puts unrelated text (and text in
/// a language it does not know) around 0.0-0.2 of a question. Fusing them
/// would outvote a clear BM25 hit.
const HYBRID_MIN_SIMILARITY: f32 = 0.2;
/// The longest query, in characters: a question fits in far fewer, and
/// each word costs a term lookup in three fields.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Characters of a chunk shown when no query word is in it.
const PLAIN_SNIPPET_CHARS: usize = 240;

impl SearchCore {
    /// Hybrid search over the caller's chunks only, and only over those
    /// of the sources `filters` names when it names some.
    pub async fn search(
        &self,
        user_id: Uuid,
        query: &str,
        k: usize,
        mode: Mode,
        filters: Filters,
    ) -> Result<(Vec<Hit>, f32)> {
        self.check_owner(user_id)?;
        let started = Instant::now();
        let query = query.trim();
        if query.is_empty() {
            return Err(SearchError::Invalid("q: the query is empty".into()));
        }
        if query.chars().nth(MAX_QUERY_CHARS).is_some() {
            return Err(SearchError::QueryTooLong(MAX_QUERY_CHARS));
        }
        let k = k.clamp(1, 50);
        let filters = Arc::new(filters);
        // Vector hits are filtered after the fact: ask for more when filtering.
        let filtered = !filters.is_empty();
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
                Some(vector) if !filters.sources.is_empty() => {
                    // Each chunk of the sources named is compared with the
                    // query: they may be few among the user's, and a walk of
                    // the whole graph would pass most of them by.
                    let _permit = self.searches.acquire().await?;
                    let text = Arc::clone(&self.text);
                    let vectors = Arc::clone(&self.vectors);
                    let filters = Arc::clone(&filters);
                    blocking(move || {
                        let Some(snapshot) = text.snapshot(user_id)? else {
                            return Ok(Vec::new());
                        };
                        let ids = snapshot.source_chunk_ids(&filters)?;
                        drop(snapshot);
                        vectors.search_among(user_id, &vector, &ids, candidates)
                    })
                    .await?
                }
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
            let filters = Arc::clone(&filters);
            // One BM25 search per core at a time, the others waiting their
            // turn in arrival order.
            let _permit = self.text_searches.acquire().await?;
            let found = blocking(move || {
                let Some(snapshot) = text.snapshot(user_id)? else {
                    return Ok(None);
                };
                let bm25 = match mode {
                    Mode::Vector => Vec::new(),
                    Mode::Hybrid | Mode::Bm25 => snapshot.search(&query, candidates, &filters)?,
                };
                let snippets = snapshot.snippets(&query)?;
                Ok(Some((Arc::new(snapshot), bm25, snippets)))
            })
            .await?;
            stage_done(SEARCH_STAGE_SECONDS, "bm25", stage);
            Ok::<_, SearchError>(found)
        };
        let (nearest, found) = tokio::try_join!(vector_side, text_side)?;
        // A user without a BM25 index has no chunk to show.
        let Some((snapshot, bm25, snippets)) = found else {
            return Ok((Vec::new(), started.elapsed().as_secs_f32() * 1000.0));
        };
        let mut nearest: Vec<(i64, f32)> = match mode {
            Mode::Hybrid => nearest
                .into_iter()
                .filter(|(_, distance)| 1.0 - distance >= HYBRID_MIN_SIMILARITY)
                .collect(),
            Mode::Bm25 | Mode::Vector => nearest,
        };
        let stage = Instant::now();

        // BM25 applied the filters inside the index; vector hits are
        // checked against their rows. Rows come from the BM25 snapshot's
        // document store (~10 µs each, on this thread), not from
        // `search.chunks`: at 16 clients the round trip to PostgreSQL took
        // 2.4 ms of each query's time (bench-search (b)). A vector hit the
        // snapshot does not hold (a chunk added or dropped by a re-index
        // since) is left out; the chunks a re-index keeps have their ids.
        let mut rows: HashMap<i64, ChunkRow> = HashMap::new();
        if filtered {
            // Up to a hundred rows: off this thread.
            let ids: Vec<i64> = nearest.iter().map(|(id, _)| *id).collect();
            let reader = Arc::clone(&snapshot);
            rows.extend(
                blocking(move || reader.chunks(&ids))
                    .await?
                    .into_iter()
                    .filter(|row| filters.admit(row))
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
                snapshot
                    .chunks(&missing)?
                    .into_iter()
                    .map(|row| (row.id, row)),
            );
            hits.extend(batch.iter().filter_map(|(id, score)| {
                let chunk = rows.remove(id).filter(|chunk| filters.admit(chunk))?;
                let highlighted = snippets.snippet(&chunk.text).to_html();
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
