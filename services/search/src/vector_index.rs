//! Vector indexes (usearch HNSW): one per user, so a search never scans or
//! filters another user's vectors (a shared filtered index took 23-125 ms
//! when few keys matched). Keys are `search.chunks` ids. A user's index is
//! loaded from `{user_id}.usearch` when first needed and closed again when
//! it has been idle longest among more than the cap ([`OpenUsers`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
use uuid::Uuid;

use crate::error::{Result, SearchError};
use crate::open_users::{Open, OpenUsers, Resident};

pub const DIMENSIONS: usize = 384;
/// Below this many vectors an exact scan is as fast as the graph and exact.
const EXACT_BELOW: usize = 5_000;
const EXTENSION: &str = "usearch";
/// Thread contexts each index reserves: usearch refuses a search when all
/// are taken, so concurrent searches are bounded below this
/// ([`MAX_CONCURRENT_SEARCHES`]); one more is left for the single writer.
const THREAD_CONTEXTS: usize = 16;
pub const MAX_CONCURRENT_SEARCHES: usize = THREAD_CONTEXTS - 2;
/// Vectors added or removed per hold of a user's index lock.
const WRITE_BATCH: usize = 8;

fn options() -> IndexOptions {
    IndexOptions {
        dimensions: DIMENSIONS,
        // The inner product: for unit vectors it is their cosine, without
        // the two norms a cosine computes for every pair (vectors are made
        // unit on the way in, [`unit`]).
        metric: MetricKind::IP,
        // Chosen on purpose (the default would be BF16): half-precision
        // floats keep 11 bits of each unit vector's components (cosines
        // within ~1e-4 of F32's), halve the memory a search reads, and made
        // HNSW search on 100,000 real embeddings 1.6x faster than F32 at the
        // same recall@20 (ADR 0004); BF16 lost recall, I8 more.
        quantization: ScalarKind::F16,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 64,
        multi: false,
    }
}

fn vector_error(err: impl std::fmt::Display) -> SearchError {
    SearchError::VectorIndex(err.to_string())
}

/// One user's index. Searching it while it changes crashed the process
/// (a test shows it), and growing it reallocates what searches read ("no
/// update or search operations should be running during this operation"):
/// adding, removing and growing take `lock` exclusively, searching and
/// saving share it. `dirty` says it changed since it was last saved.
struct UserIndex {
    index: Index,
    lock: RwLock<()>,
    dirty: AtomicBool,
}

impl Resident for UserIndex {
    fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }
}

impl UserIndex {
    fn new(index: Index) -> Self {
        Self {
            index,
            lock: RwLock::new(()),
            dirty: AtomicBool::new(false),
        }
    }

    /// Holds off changes while the index is read.
    fn using(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Like [`Self::using`], but `None` instead of waiting while it changes.
    fn try_using(&self) -> Option<RwLockReadGuard<'_, ()>> {
        match self.lock.try_read() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The `limit` nearest keys; the caller holds the read lock.
    fn nearest(&self, query: &[f32], limit: usize) -> Result<Vec<(i64, f32)>> {
        let index = &self.index;
        if index.size() == 0 {
            return Ok(Vec::new());
        }
        let query = unit(query);
        let matches = if index.size() < EXACT_BELOW {
            index.exact_search(&query, limit)
        } else {
            index.search(&query, limit)
        }
        .map_err(vector_error)?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .filter_map(|(k, d)| i64::try_from(*k).ok().map(|id| (id, *d)))
            .collect())
    }

    /// Holds off everything else while the index changes, and marks it
    /// changed.
    fn alone(&self) -> RwLockWriteGuard<'_, ()> {
        let guard = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        self.dirty.store(true, Ordering::Release);
        guard
    }

    /// Puts `vectors` in, each in place of the vector its key had, first
    /// growing the index geometrically when they do not fit (reserving
    /// copies the graph), while nothing else uses it. A key's old vector
    /// goes and its new one comes in the same hold of the lock, so no
    /// search finds the key missing in between.
    fn put(&self, vectors: &[(i64, &[f32])]) -> Result<()> {
        let _alone = self.alone();
        let wanted = self.index.size() + vectors.len();
        if wanted > self.index.capacity() {
            self.index
                .reserve_capacity_and_threads(
                    wanted.max(self.index.capacity() * 2),
                    THREAD_CONTEXTS,
                )
                .map_err(vector_error)?;
        }
        for (id, vector) in vectors {
            let key = key(*id);
            if self.index.contains(key) {
                self.index.remove(key).map_err(vector_error)?;
            }
            self.index.add(key, &unit(vector)).map_err(vector_error)?;
        }
        Ok(())
    }

    /// The `limit` nearest of the vectors keyed `ids`, each compared with
    /// the query; the caller holds the read lock.
    fn nearest_among(&self, query: &[f32], ids: &[i64], limit: usize) -> Result<Vec<(i64, f32)>> {
        let query = unit(query);
        let mut vector = vec![0.0_f32; DIMENSIONS];
        let mut scored = Vec::with_capacity(ids.len());
        for &id in ids {
            if self.index.get(key(id), &mut vector).map_err(vector_error)? == 0 {
                continue;
            }
            let similarity: f32 = query.iter().zip(&vector).map(|(q, v)| q * v).sum();
            // The inner product's distance, as usearch reports it.
            scored.push((id, 1.0 - similarity));
        }
        scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        Ok(scored)
    }

    /// Writes the index to `path` when it changed since it was last saved
    /// (write then rename: a crash never leaves a half-written file under
    /// the real name).
    fn save(&self, path: &Path) -> Result<()> {
        let _using = self.using();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let partial = path.with_extension("partial");
        let saved = self
            .index
            .save(&partial.to_string_lossy())
            .map_err(vector_error)
            .and_then(|()| Ok(std::fs::rename(&partial, path)?));
        if saved.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        saved
    }
}

/// Every user's vector index, at most `max_open` of them idle in memory.
///
/// Changes (`add`, `remove`, `delete_user`, `clear`, `save_dirty`) are
/// made one at a time by the caller (`SearchCore` holds its write lock);
/// searches run beside them and beside each other.
pub struct VectorIndexes {
    dir: PathBuf,
    users: OpenUsers<UserIndex>,
}

impl VectorIndexes {
    /// Indexes saved in `dir`, loaded when first searched or changed.
    pub fn open(dir: &Path, max_open: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            users: OpenUsers::new("vector", max_open),
        })
    }

    fn path(&self, user_id: Uuid) -> PathBuf {
        self.dir.join(format!("{user_id}.{EXTENSION}"))
    }

    /// The user's index as saved; `None` when they have none.
    fn load(&self, user_id: Uuid) -> Result<Option<UserIndex>> {
        let path = self.path(user_id);
        if !path.is_file() {
            return Ok(None);
        }
        let index = Index::new(&options()).map_err(vector_error)?;
        index.load(&path.to_string_lossy()).map_err(vector_error)?;
        // A loaded index has only the default thread contexts: without
        // these, concurrent searches fail ("Reserve capacity ahead").
        index
            .reserve_capacity_and_threads(index.capacity().max(index.size()), THREAD_CONTEXTS)
            .map_err(vector_error)?;
        Ok(Some(UserIndex::new(index)))
    }

    /// The user's index, loaded when closed; `None` when they have none.
    fn get(&self, user_id: Uuid) -> Result<Option<Open<UserIndex>>> {
        if let Some(user) = self.users.cached(user_id) {
            return Ok(Some(user));
        }
        // A user without an index takes no place in the cache.
        if !self.path(user_id).is_file() {
            return Ok(None);
        }
        self.users.open(user_id, || self.load(user_id))
    }

    fn get_or_create(&self, user_id: Uuid) -> Result<Open<UserIndex>> {
        let user = self.users.open(user_id, || match self.load(user_id)? {
            Some(user) => Ok(Some(user)),
            None => {
                let index = Index::new(&options()).map_err(vector_error)?;
                index
                    .reserve_capacity_and_threads(64, THREAD_CONTEXTS)
                    .map_err(vector_error)?;
                Ok(Some(UserIndex::new(index)))
            }
        })?;
        user.ok_or_else(|| vector_error("a new index was not kept"))
    }

    /// Saves and closes indexes beyond the cap that nothing uses.
    fn flush_excess(&self) -> Result<()> {
        self.users
            .flush_excess(|user_id, user| user.save(&self.path(user_id)))
    }

    /// Adds `vectors` to the user's index, each in place of the vector its
    /// key had (a chunk re-indexed keeps its id): a search meanwhile finds
    /// each key with its old vector or its new one, never without.
    pub fn add(&self, user_id: Uuid, vectors: &[(i64, &[f32])]) -> Result<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        for (id, vector) in vectors {
            if vector.len() != DIMENSIONS {
                return Err(SearchError::Invalid(format!(
                    "embedding of chunk {id} has {} dimensions, expected {DIMENSIONS}",
                    vector.len()
                )));
            }
        }
        let user = self.get_or_create(user_id)?;
        // A few at a time, so searches of this user slip in between.
        for batch in vectors.chunks(WRITE_BATCH) {
            user.put(batch)?;
        }
        drop(user);
        self.flush_excess()
    }

    pub fn remove(&self, user_id: Uuid, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let Some(user) = self.get(user_id)? else {
            return Ok(());
        };
        for batch in ids.chunks(WRITE_BATCH) {
            let _alone = user.alone();
            for id in batch {
                user.index.remove(key(*id)).map_err(vector_error)?;
            }
        }
        drop(user);
        self.flush_excess()
    }

    /// Forgets a user's index in memory and on disk; no search opens it
    /// again meanwhile.
    pub fn delete_user(&self, user_id: Uuid) -> Result<()> {
        let path = self.path(user_id);
        self.users.forget(user_id, |_| {
            for file in [path.with_extension("partial"), path.clone()] {
                match std::fs::remove_file(&file) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(err.into());
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }

    /// Forgets every index, open or saved (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let mut users = self.users.users();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let stem = path.file_stem().and_then(|s| s.to_str());
            if let Some(user_id) = stem.and_then(|s| Uuid::parse_str(s).ok()) {
                users.push(user_id);
            }
        }
        users.sort_unstable();
        users.dedup();
        for user_id in users {
            self.delete_user(user_id)?;
        }
        Ok(())
    }

    /// Returns the `limit` nearest chunks: (chunk id, cosine distance).
    pub fn search(&self, user_id: Uuid, query: &[f32], limit: usize) -> Result<Vec<(i64, f32)>> {
        let Some(user) = self.get(user_id)? else {
            return Ok(Vec::new());
        };
        let _using = user.using();
        user.nearest(query, limit)
    }

    /// Returns the `limit` nearest of the chunks `ids` (those the index
    /// holds): (chunk id, cosine distance). Each of their vectors is
    /// compared with the query, so a search restricted to a few documents
    /// finds their best chunks, which a walk of the whole graph filtered
    /// afterwards may pass by; it costs a lookup and a product per id.
    pub fn search_among(
        &self,
        user_id: Uuid,
        query: &[f32],
        ids: &[i64],
        limit: usize,
    ) -> Result<Vec<(i64, f32)>> {
        let Some(user) = self.get(user_id)? else {
            return Ok(Vec::new());
        };
        let _using = user.using();
        user.nearest_among(query, ids, limit)
    }

    /// Like [`Self::search`], but `None` instead of waiting while the
    /// user's index is closed (loading it reads its file) or being changed
    /// (a batch of additions, or the index growing, which copies it): a
    /// caller on an async worker can then wait on another thread.
    pub fn try_search(
        &self,
        user_id: Uuid,
        query: &[f32],
        limit: usize,
    ) -> Result<Option<Vec<(i64, f32)>>> {
        let Some(user) = self.users.cached(user_id) else {
            return Ok(None);
        };
        let Some(_using) = user.try_using() else {
            return Ok(None);
        };
        user.nearest(query, limit).map(Some)
    }

    /// Writes every changed index to disk, then closes the idle ones
    /// beyond the cap.
    pub fn save_dirty(&self) -> Result<()> {
        for (user_id, user) in self.users.all() {
            user.save(&self.path(user_id))?;
        }
        self.users.shrink();
        Ok(())
    }

    pub fn len(&self, user_id: Uuid) -> Result<usize> {
        Ok(self.get(user_id)?.map_or(0, |user| user.index.size()))
    }

    /// Users whose index is open now.
    pub fn open_users(&self) -> usize {
        self.users.len()
    }
}

/// `vector` scaled to length 1 (the model's embeddings already are), so
/// its inner product with another is their cosine.
fn unit(vector: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if (norm - 1.0).abs() < 1e-4 || norm == 0.0 {
        std::borrow::Cow::Borrowed(vector)
    } else {
        std::borrow::Cow::Owned(vector.iter().map(|x| x / norm).collect())
    }
}

fn key(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic unit vectors (xorshift), enough to build a graph index.
    fn vectors(count: usize) -> Vec<Vec<f32>> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..count)
            .map(|_| {
                let mut v: Vec<f32> = (0..DIMENSIONS)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % 2_000) as f32 / 1_000.0 - 1.0
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    /// Each vector keyed by its place.
    fn numbered(data: &[Vec<f32>]) -> Vec<(i64, &[f32])> {
        data.iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.as_slice()))
            .collect()
    }

    #[test]
    fn searches_go_on_while_the_index_grows() {
        let dir = std::env::temp_dir().join(format!("pai-vectors-{}", Uuid::new_v4()));
        let user = Uuid::new_v4();
        let data = vectors(3_000);
        let indexes = VectorIndexes::open(&dir, 16).unwrap();
        let pair = |i: usize| (i as i64, data[i].as_slice());
        indexes
            .add(user, &(0..10).map(pair).collect::<Vec<_>>())
            .unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let searchers: Vec<_> = (0..4)
                .map(|t| {
                    let (indexes, data, done) = (&indexes, &data, &done);
                    scope.spawn(move || {
                        let mut searches = 0;
                        while !done.load(std::sync::atomic::Ordering::Relaxed) {
                            let wanted = (t + searches) % 10;
                            let hits = indexes.search(user, &data[wanted], 3).unwrap();
                            assert_eq!(hits.first().map(|h| h.0), Some(wanted as i64));
                            searches += 1;
                        }
                        searches
                    })
                })
                .collect();
            // Batches of 50 from a capacity of 64: the index grows six times.
            for start in (10..data.len()).step_by(50) {
                let end = (start + 50).min(data.len());
                indexes
                    .add(user, &(start..end).map(pair).collect::<Vec<_>>())
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            for searcher in searchers {
                assert!(searcher.join().unwrap() > 0);
            }
        });
        assert_eq!(indexes.len(user).unwrap(), data.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn try_search_answers_unless_the_index_is_changing() {
        let dir = std::env::temp_dir().join(format!("pai-vectors-{}", Uuid::new_v4()));
        let (user, stranger) = (Uuid::new_v4(), Uuid::new_v4());
        let data = vectors(100);
        let indexes = VectorIndexes::open(&dir, 16).unwrap();
        indexes.add(user, &numbered(&data)).unwrap();
        let found = indexes.try_search(user, &data[7], 5).unwrap();
        assert_eq!(found, Some(indexes.search(user, &data[7], 5).unwrap()));
        assert_eq!(found.unwrap()[0].0, 7);
        // A user without an index, like a closed one, is searched off the
        // async worker.
        assert_eq!(indexes.try_search(stranger, &data[7], 5).unwrap(), None);
        assert!(indexes.search(stranger, &data[7], 5).unwrap().is_empty());
        let changing = indexes.get(user).unwrap().unwrap();
        let alone = changing.alone();
        assert_eq!(indexes.try_search(user, &data[7], 5).unwrap(), None);
        drop(alone);
        assert!(indexes.try_search(user, &data[7], 5).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_index_loaded_from_disk_takes_concurrent_searches() {
        let dir = std::env::temp_dir().join(format!("pai-vectors-{}", Uuid::new_v4()));
        let user = Uuid::new_v4();
        let data = vectors(EXACT_BELOW + 500);
        {
            let indexes = VectorIndexes::open(&dir, 16).unwrap();
            indexes.add(user, &numbered(&data)).unwrap();
            indexes.save_dirty().unwrap();
        }
        let indexes = VectorIndexes::open(&dir, 16).unwrap();
        assert_eq!(indexes.len(user).unwrap(), data.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..MAX_CONCURRENT_SEARCHES)
                .map(|t| {
                    let (indexes, data) = (&indexes, &data);
                    scope.spawn(move || {
                        for i in 0..50 {
                            let wanted = (t * 50 + i) % data.len();
                            let hits = indexes.search(user, &data[wanted], 5).unwrap();
                            assert_eq!(hits.first().map(|h| h.0), Some(wanted as i64));
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A vector added again under its key replaces the old one in place,
    /// and a search among some keys ranks exactly those, as the whole
    /// index's exact search would.
    #[test]
    fn a_key_added_again_is_replaced_and_searched_among_others() {
        let dir = std::env::temp_dir().join(format!("pai-vectors-{}", Uuid::new_v4()));
        let user = Uuid::new_v4();
        let data = vectors(150);
        let indexes = VectorIndexes::open(&dir, 16).unwrap();
        indexes.add(user, &numbered(&data[..100])).unwrap();
        let again: Vec<(i64, &[f32])> = (0..50)
            .map(|i| (i as i64, data[100 + i].as_slice()))
            .collect();
        indexes.add(user, &again).unwrap();
        assert_eq!(indexes.len(user).unwrap(), 100);
        assert_eq!(indexes.search(user, &data[120], 1).unwrap()[0].0, 20);

        let among = indexes
            .search_among(user, &data[120], &[77, 3, 20, 9_999], 10)
            .unwrap();
        assert_eq!(
            among.iter().map(|h| h.0).collect::<Vec<_>>()[0],
            20,
            "{among:?}"
        );
        assert_eq!(among.len(), 3, "the unknown key is left out: {among:?}");
        let everything = indexes.search(user, &data[120], 100).unwrap();
        for (id, distance) in &among {
            let (_, exact) = everything.iter().find(|h| h.0 == *id).unwrap();
            assert!((distance - exact).abs() < 1e-3, "{id}: {distance} {exact}");
        }
        assert!(among.windows(2).all(|w| w[0].1 <= w[1].1), "{among:?}");
        assert!(
            indexes
                .search_among(Uuid::new_v4(), &data[0], &[1, 2], 10)
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// While a user's vectors are replaced in batches, a search among
    /// their keys finds every key each time.
    #[test]
    fn a_replaced_vector_is_never_missing() {
        let dir = std::env::temp_dir().join(format!("pai-vectors-{}", Uuid::new_v4()));
        let user = Uuid::new_v4();
        let data = vectors(200);
        let indexes = VectorIndexes::open(&dir, 16).unwrap();
        indexes.add(user, &numbered(&data[..100])).unwrap();
        let ids: Vec<i64> = (0..100).collect();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let searcher = scope.spawn(|| {
                let mut searches = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || searches == 0 {
                    let found = indexes.search_among(user, &data[0], &ids, 100).unwrap();
                    assert_eq!(found.len(), 100);
                    searches += 1;
                }
                searches
            });
            for round in 0..20 {
                let offset = 100 * (round % 2);
                let pairs: Vec<(i64, &[f32])> = (0..100)
                    .map(|i| (i as i64, data[offset + i].as_slice()))
                    .collect();
                indexes.add(user, &pairs).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(searcher.join().unwrap() > 0);
        });
        assert_eq!(indexes.len(user).unwrap(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
