//! The BM25 indexes (tantivy): one per user, in a folder named after the
//! user, so that a search reads only the caller's postings and scores them
//! with statistics of the caller's own chunks. In one index shared by every
//! user, a user with 100,000 of 300,000 chunks had block-max WAND walk the
//! other users' postings of each word beside theirs (0.40 ms a query
//! against 0.21 ms in an index of their own, bench-search (b)), and a
//! word's weight in one user's results depended on how often other users'
//! documents used it. A user's index is opened when first searched or
//! changed and closed again when it has been idle longest among more than
//! the cap ([`OpenUsers`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use tantivy::merge_policy::LogMergePolicy;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};
use uuid::Uuid;

use crate::analysis::{self, Derived, PARTS, STEMS, WORDS};
use crate::error::{Result, SearchError};
use crate::open_users::{Open, OpenUsers, Resident};
use crate::repo::ChunkRow;
pub use crate::text_search::{Filters, TextSnapshot};

const WRITER_MEMORY: usize = 50_000_000;
/// Writers open at once (each has its threads and memory): a rebuild
/// that meets more users commits the open ones first.
const MAX_OPEN_WRITERS: usize = 8;
/// The chunk id's field name.
pub(crate) const ID: &str = "id";

/// Source kinds the index knows: a source's index term names its kind.
pub const SOURCE_KINDS: [&str; 2] = ["document", "email"];

/// The schema's fields.
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) id: Field,
    pub(crate) user: Field,
    pub(crate) source: Field,
    pub(crate) source_id: Field,
    pub(crate) kind: Field,
    pub(crate) category: Field,
    pub(crate) title: Field,
    pub(crate) page: Field,
    pub(crate) ordinal: Field,
    pub(crate) created: Field,
    pub(crate) text: Field,
    pub(crate) stems: Field,
    pub(crate) parts: Field,
}

/// One user's index. Its writer is opened by the first change after a
/// commit and closed by the commit, so idle users hold no threads; an
/// index with an open writer is never closed (its changes would be lost).
pub(crate) struct UserText {
    index: Index,
    pub(crate) reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
}

pub struct TextIndex {
    dir: PathBuf,
    users: OpenUsers<UserText>,
    schema: Schema,
    fields: Fields,
}

/// Identifies a source across users: `user/kind/source_id`.
pub fn source_key(user_id: Uuid, kind: &str, source_id: Uuid) -> String {
    format!("{user_id}/{kind}/{source_id}")
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let derived = |tokenizer| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    // The document store keeps each chunk's row (what a hit shows), so a
    // search reads its hits here instead of asking PostgreSQL.
    let stored_text = text_options.set_stored();
    let fields = Fields {
        // A fast field: a BM25 hit's id is read from a column, not from the
        // compressed document store.
        id: builder.add_i64_field(ID, INDEXED | FAST),
        // Stored only, to check a row's owner: the folder is the user's.
        user: builder.add_text_field("user", STORED),
        source: builder.add_text_field("source", STRING),
        source_id: builder.add_text_field("source_id", STORED),
        kind: builder.add_text_field("kind", STRING | STORED),
        category: builder.add_text_field("category", STRING | STORED),
        title: builder.add_text_field("title", stored_text.clone()),
        page: builder.add_i64_field("page", INDEXED | STORED),
        ordinal: builder.add_i64_field("ordinal", STORED),
        // Microseconds since the epoch.
        created: builder.add_i64_field("created", STORED),
        text: builder.add_text_field("text", stored_text),
        stems: builder.add_text_field("stems", derived(STEMS)),
        parts: builder.add_text_field("parts", derived(PARTS)),
    };
    (builder.build(), fields)
}

/// tantivy's log merge policy, except that a segment holding any deleted
/// chunk is merged with its level by the commit that deleted it: tantivy
/// only marks a delete, and by default a segment keeps its deleted
/// documents (their stored text among them) until a fifth of it is
/// deleted, which a small segment may never reach. A commit that deleted
/// nothing merges what the default would.
fn merge_policy() -> LogMergePolicy {
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(f32::MIN_POSITIVE);
    policy
}

impl Resident for UserText {
    fn is_dirty(&self) -> bool {
        match self.writer.try_lock() {
            Ok(slot) => slot.is_some(),
            Err(TryLockError::Poisoned(slot)) => slot.into_inner().is_some(),
            Err(TryLockError::WouldBlock) => true,
        }
    }
}

impl UserText {
    fn open(dir: &Path, schema: Schema) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| SearchError::TextIndex(e.into()))?;
        let index = Index::open_or_create(directory, schema)?;
        index.tokenizers().register(WORDS, analysis::words());
        index.tokenizers().register(STEMS, Derived::stems());
        index.tokenizers().register(PARTS, Derived::parts());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(None),
        })
    }

    fn writer_slot(&self) -> MutexGuard<'_, Option<IndexWriter>> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `change` on the writer, opening it when closed.
    fn change(&self, change: impl FnOnce(&mut IndexWriter) -> Result<()>) -> Result<()> {
        let mut slot = self.writer_slot();
        let writer = match &mut *slot {
            Some(writer) => writer,
            empty => empty.insert(Self::writer_when_free(&self.index)?),
        };
        change(writer)
    }

    /// Takes the index's writer lock, waiting a while for a previous
    /// instance in this process (a restarted service) to let it go.
    fn writer_when_free(index: &Index) -> Result<IndexWriter> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match index.writer_with_num_threads(1, WRITER_MEMORY) {
                Err(tantivy::TantivyError::LockFailure(_, _))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => {
                    let writer = other?;
                    writer.set_merge_policy(Box::new(merge_policy()));
                    return Ok(writer);
                }
            }
        }
    }

    fn is_writing(&self) -> bool {
        self.writer_slot().is_some()
    }

    /// Commits the pending changes, lets the merges they started finish,
    /// closes the writer and shows the result to searches.
    fn commit(&self) -> Result<()> {
        let Some(mut writer) = self.writer_slot().take() else {
            return Ok(());
        };
        writer.commit()?;
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }
}

impl TextIndex {
    /// Opens the indexes under `dir` (one folder per user), creating `dir`
    /// when absent. A user's index is opened when first used; at most
    /// `max_open` idle ones stay open.
    pub fn open(dir: &Path, max_open: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        Ok(Self {
            dir: dir.to_owned(),
            users: OpenUsers::new("text", max_open),
            schema,
            fields,
        })
    }

    fn user_dir(&self, user_id: Uuid) -> PathBuf {
        self.dir.join(user_id.to_string())
    }

    /// The user's index, opened when closed; `None` when they have none.
    fn user(&self, user_id: Uuid) -> Result<Option<Open<UserText>>> {
        if let Some(user) = self.users.cached(user_id) {
            return Ok(Some(user));
        }
        // A user without an index takes no place in the cache.
        if !self.user_dir(user_id).is_dir() {
            return Ok(None);
        }
        self.open_user(user_id, false)
    }

    /// The user's index, created when they have none.
    fn writable_user(&self, user_id: Uuid) -> Result<Open<UserText>> {
        self.open_user(user_id, true)?
            .ok_or_else(|| std::io::Error::other("a new text index was not kept").into())
    }

    /// Opens the user's index (creating it when `create`), unless another
    /// thread did first.
    fn open_user(&self, user_id: Uuid, create: bool) -> Result<Option<Open<UserText>>> {
        let dir = self.user_dir(user_id);
        self.users.open(user_id, || {
            if !create && !dir.is_dir() {
                return Ok(None);
            }
            UserText::open(&dir, self.schema.clone()).map(Some)
        })
    }

    /// Users whose writer is open (changes not yet committed).
    fn open_writers(&self) -> usize {
        self.users
            .all()
            .iter()
            .filter(|(_, user)| user.is_writing())
            .count()
    }

    /// Users whose index is open now.
    pub fn open_users(&self) -> usize {
        self.users.len()
    }

    /// The users with an index on disk.
    fn users_on_disk(&self) -> Result<Vec<Uuid>> {
        let mut users = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(user) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Adds chunks (of any users) to their owners' indexes, visible after
    /// [`Self::commit`].
    pub fn add<'a>(&self, chunks: impl IntoIterator<Item = &'a ChunkRow>) -> Result<()> {
        let mut by_user: HashMap<Uuid, Vec<&ChunkRow>> = HashMap::new();
        for chunk in chunks {
            by_user.entry(chunk.user_id).or_default().push(chunk);
        }
        for (user_id, rows) in by_user {
            let user = self.writable_user(user_id)?;
            if !user.is_writing() && self.open_writers() >= MAX_OPEN_WRITERS {
                self.commit()?;
            }
            let f = &self.fields;
            user.change(|writer| {
                for c in rows {
                    writer.add_document(doc!(
                        f.id => c.id,
                        f.user => c.user_id.to_string(),
                        f.source => source_key(c.user_id, &c.source_kind, c.source_id),
                        f.source_id => c.source_id.to_string(),
                        f.kind => c.source_kind.as_str(),
                        f.category => c.category.as_str(),
                        f.title => c.title.as_str(),
                        f.page => i64::from(c.page),
                        f.ordinal => i64::from(c.ordinal),
                        f.created => c.created_at.timestamp_micros(),
                        f.text => c.text.as_str(),
                        f.stems => c.text.as_str(),
                        f.parts => c.text.as_str(),
                    ))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The user's index as its last commit left it; `None` when they have
    /// none. A search reads all it needs from one snapshot.
    pub fn snapshot(&self, user_id: Uuid) -> Result<Option<TextSnapshot>> {
        Ok(self
            .user(user_id)?
            .map(|user| TextSnapshot::new(user_id, user, self.fields)))
    }

    /// The caller's chunks among `ids`, read from the document store (the
    /// rows of `search.chunks` as the index last saw them); ids of deleted
    /// chunks and of other users' are left out.
    pub fn chunks(&self, user_id: Uuid, ids: &[i64]) -> Result<Vec<ChunkRow>> {
        match self.snapshot(user_id)? {
            Some(snapshot) => snapshot.chunks(ids),
            None => Ok(Vec::new()),
        }
    }

    /// Deletes one source's chunks from its owner's index, at the next
    /// [`Self::commit`].
    pub fn delete_source(&self, user_id: Uuid, kind: &str, source_id: Uuid) -> Result<()> {
        let Some(user) = self.user(user_id)? else {
            return Ok(());
        };
        let term = Term::from_field_text(self.fields.source, &source_key(user_id, kind, source_id));
        user.change(|writer| {
            writer.delete_term(term);
            Ok(())
        })
    }

    /// Erases a user's index: their folder, and with it every segment,
    /// document store and deleted entry of theirs, leaves the disk now.
    pub fn erase_user(&self, user_id: Uuid) -> Result<()> {
        // No search opens it again before the folder is gone.
        self.users.forget(user_id, |user| {
            if let Some(user) = user {
                // Uncommitted changes of an erased user go with them.
                drop(user.writer_slot().take());
            }
            match std::fs::remove_dir_all(self.user_dir(user_id)) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
                _ => Ok(()),
            }
        })
    }

    /// Erases every user's index (a rebuild starts here).
    pub fn clear(&self) -> Result<()> {
        let mut users = self.users_on_disk()?;
        users.extend(self.users.users());
        users.sort_unstable();
        users.dedup();
        for user_id in users {
            self.erase_user(user_id)?;
        }
        Ok(())
    }

    /// Makes every pending change durable and visible to searches, then
    /// closes the idle indexes beyond the cap.
    pub fn commit(&self) -> Result<()> {
        for (_, user) in self.users.all() {
            user.commit()?;
        }
        self.users.shrink();
        Ok(())
    }

    /// Chunks in every user's index.
    pub fn num_docs(&self) -> Result<u64> {
        let mut docs = 0;
        for user_id in self.users_on_disk()? {
            if let Some(user) = self.user(user_id)? {
                docs += user.reader.searcher().num_docs();
            }
        }
        Ok(docs)
    }

    /// Returns the caller's best chunks for `query`: (chunk id, BM25
    /// score), from a snapshot of their own ([`TextSnapshot::search`]).
    pub fn search(
        &self,
        user_id: Uuid,
        query: &str,
        limit: usize,
        filters: &Filters,
    ) -> Result<Vec<(i64, f32)>> {
        match self.snapshot(user_id)? {
            Some(snapshot) => snapshot.search(query, limit, filters),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::SegmentMeta;

    const VOCABULARY: [&str; 24] = [
        "invoice", "total", "river", "census", "meeting", "school", "board", "amount", "lecture",
        "geology", "rock", "layer", "payment", "due", "vote", "budget", "map", "survey", "water",
        "tax", "report", "season", "harvest", "bridge",
    ];

    /// An empty index in a folder of its own (the test removes it).
    fn temp_index() -> (std::path::PathBuf, TextIndex) {
        let dir = std::env::temp_dir().join(format!("pai-text-{}", Uuid::new_v4()));
        let index = TextIndex::open(&dir, 16).expect("open");
        (dir, index)
    }

    /// Indexes `count` chunks for `user`, ids from `first`, ten per source,
    /// eight words each drawn by a fixed xorshift.
    fn add_user(
        index: &TextIndex,
        user: Uuid,
        first: i64,
        count: i64,
        state: &mut u64,
    ) -> Vec<Uuid> {
        let mut sources = Vec::new();
        let mut rows = Vec::new();
        let mut source_id = Uuid::nil();
        for n in 0..count {
            if n % 10 == 0 {
                source_id = Uuid::new_v4();
                sources.push(source_id);
            }
            let words: Vec<&str> = (0..8)
                .map(|_| {
                    *state ^= *state << 13;
                    *state ^= *state >> 7;
                    *state ^= *state << 17;
                    VOCABULARY[(*state % VOCABULARY.len() as u64) as usize]
                })
                .collect();
            rows.push(ChunkRow {
                id: first + n,
                user_id: user,
                source_kind: "document".into(),
                source_id,
                ordinal: (n % 10) as i32,
                title: "notes.pdf".into(),
                category: "generic".into(),
                page: 1 + (n % 3) as i32,
                text: words.join(" "),
                created_at: chrono::DateTime::from_timestamp_micros(1_764_000_000_000_000 + n)
                    .expect("a time"),
            });
        }
        index.add(&rows).expect("add");
        sources
    }

    /// A search by the words alone (pruning) and one with a kind filter
    /// (intersecting) find the same hits with the same scores, only the
    /// user's own, and never a deleted chunk.
    #[test]
    fn pruned_and_intersected_searches_agree() {
        let (dir, index) = temp_index();
        let (few, many) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = 0x9E37_79B9_7F4A_7C15;
        add_user(&index, few, 0, 20, &mut state);
        let sources = add_user(&index, many, 1_000, 1_000, &mut state);
        index.commit().expect("commit");
        let intersect = Filters {
            kind: Some("document".into()),
            ..Filters::default()
        };
        let check = |deleted: &[i64]| {
            for query in [
                "invoice total",
                "river census meeting",
                "geology rock layers",
                "tax",
            ] {
                for (user, ids) in [(few, 0..20), (many, 1_000..2_000)] {
                    let pruned = index
                        .search(user, query, 10, &Filters::default())
                        .expect("search");
                    let intersected = index.search(user, query, 10, &intersect).expect("search");
                    // The two ways sum a hit's term scores in different
                    // orders (last-bit differences), so equal scores may
                    // swap places; everything above the last kept score is
                    // the same set.
                    assert_eq!(pruned.len(), intersected.len(), "{query:?}");
                    for (p, i) in pruned.iter().zip(&intersected) {
                        assert!(
                            (p.1 - i.1).abs() < 1e-4,
                            "{query:?}: {pruned:?} {intersected:?}"
                        );
                    }
                    let bar = pruned.last().map_or(0.0, |hit| hit.1) + 1e-4;
                    let clear = |hits: &[(i64, f32)]| {
                        let mut ids: Vec<i64> =
                            hits.iter().filter(|h| h.1 > bar).map(|h| h.0).collect();
                        ids.sort_unstable();
                        ids
                    };
                    assert_eq!(clear(&pruned), clear(&intersected), "{query:?}");
                    assert!(!pruned.is_empty(), "{query:?}");
                    assert!(pruned.windows(2).all(|w| w[0].1 >= w[1].1), "{pruned:?}");
                    for (id, _) in &pruned {
                        assert!(ids.contains(id), "{query:?}: another user's chunk {id}");
                        assert!(!deleted.contains(id), "{query:?}: deleted chunk {id}");
                    }
                }
            }
        };
        check(&[]);
        // The first source of `many` (ids 1000-1009) goes: its chunks stay in
        // the segment as deleted documents.
        index
            .delete_source(many, "document", sources[0])
            .expect("delete");
        index.commit().expect("commit");
        check(&(1_000..1_010).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A hit's row comes back from the document store as it was added,
    /// only to its owner, and not once its source is deleted or replaced.
    #[test]
    fn chunks_are_read_back_for_their_owner_only() {
        let (dir, index) = temp_index();
        let (owner, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = 0x2545_F491_4F6C_DD1D;
        let sources = add_user(&index, owner, 0, 20, &mut state);
        add_user(&index, other, 100, 10, &mut state);
        index.commit().expect("commit");

        let rows = index.chunks(owner, &[3, 12, 105, 999]).expect("chunks");
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [3, 12],
            "another user's chunk 105 and the unknown 999 are left out"
        );
        let row = &rows[0];
        assert_eq!(row.user_id, owner);
        assert_eq!((row.ordinal, row.page), (3, 1));
        assert_eq!(row.text.split(' ').count(), 8, "{row:?}");
        assert_eq!(row.created_at.timestamp_micros(), 1_764_000_000_000_003);
        assert_eq!(row.source_id, sources[0]);
        assert_eq!(
            index.chunks(other, &[105]).expect("chunks")[0].user_id,
            other
        );

        // The first source is replaced: same ids, new text; then the second
        // is deleted.
        index
            .delete_source(owner, "document", sources[0])
            .expect("delete");
        let mut replaced = rows[0].clone();
        replaced.text = "replacement text".into();
        index.add([&replaced]).expect("add");
        index
            .delete_source(owner, "document", sources[1])
            .expect("delete");
        index.commit().expect("commit");
        let rows = index.chunks(owner, &[3, 12]).expect("chunks");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].id, rows[0].text.as_str()), (3, "replacement text"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each user's chunks live in a folder of their own; erasing a user
    /// removes their folder and keeps everyone else's chunks.
    #[test]
    fn an_erased_user_leaves_no_chunk_on_disk() {
        let (dir, index) = temp_index();
        let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = 0x1234_5678_9ABC_DEF1;
        for first in [0, 1_000] {
            add_user(&index, gone, first, 30, &mut state);
            add_user(&index, kept, first + 500, 30, &mut state);
            index.commit().expect("commit");
        }
        assert!(dir.join(gone.to_string()).is_dir());
        assert_eq!(index.num_docs().expect("count"), 120);
        index.erase_user(gone).expect("erase");
        assert!(
            !dir.join(gone.to_string()).exists(),
            "the user's folder stays"
        );
        assert_eq!(index.num_docs().expect("count"), 60);
        assert!(index.chunks(gone, &[0, 1_000]).expect("chunks").is_empty());
        assert!(
            index
                .search(gone, "invoice total", 10, &Filters::default())
                .expect("search")
                .is_empty()
        );
        assert_eq!(index.chunks(kept, &[500, 1_500]).expect("chunks").len(), 2);

        // A new index of the same folder (a restart) finds what was kept.
        drop(index);
        let reopened = TextIndex::open(&dir, 16).expect("reopen");
        assert_eq!(reopened.num_docs().expect("count"), 60);
        assert!(reopened.chunks(gone, &[0]).expect("chunks").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A deleted document's chunks leave the user's segments with the
    /// commit that deletes them, not only its search hits.
    #[test]
    fn a_deleted_source_leaves_no_chunk_in_the_segments() {
        let (dir, index) = temp_index();
        let user = Uuid::new_v4();
        let mut state = 0x0F1E_2D3C_4B5A_6978;
        let sources = add_user(&index, user, 0, 30, &mut state);
        index.commit().expect("commit");
        // A second commit, so the deleted source and a kept one lie in
        // different segments.
        add_user(&index, user, 100, 20, &mut state);
        index.commit().expect("commit");
        let stored = |index: &TextIndex| {
            let user = index.user(user).expect("open").expect("an index");
            let metas = user.index.searchable_segment_metas().expect("metas");
            let deleted: u32 = metas.iter().map(SegmentMeta::num_deleted_docs).sum();
            let kept: u32 = metas.iter().map(SegmentMeta::num_docs).sum();
            (kept, deleted)
        };
        assert_eq!(stored(&index), (50, 0));

        index
            .delete_source(user, "document", sources[1])
            .expect("delete");
        index.commit().expect("commit");
        assert_eq!(stored(&index), (40, 0), "deleted chunks stay on disk");
        assert!(
            index
                .chunks(user, &[10, 15, 19])
                .expect("chunks")
                .is_empty()
        );
        assert_eq!(index.chunks(user, &[9, 20, 100]).expect("chunks").len(), 3);
        let found = index
            .search(user, "invoice total river census", 50, &Filters::default())
            .expect("search");
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|(id, _)| !(10..20).contains(id)),
            "{found:?}"
        );

        // A restart reads the rewritten segments.
        drop(index);
        let reopened = TextIndex::open(&dir, 16).expect("reopen");
        assert_eq!(stored(&reopened), (40, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A search's hits resolve in the snapshot they were ranked in, though
    /// a commit replaced their source meanwhile with fewer chunks: a fresh
    /// read would find the chunks the new version dropped gone.
    #[test]
    fn a_snapshot_resolves_its_hits_after_a_commit() {
        let (dir, index) = temp_index();
        let user = Uuid::new_v4();
        let mut state = 0x5DEE_CE66_D1CE_4E5B;
        let sources = add_user(&index, user, 0, 10, &mut state);
        index.commit().expect("commit");
        let before = index.snapshot(user).expect("open").expect("an index");
        // Every word any chunk has: all ten match.
        let hits = before
            .search(&VOCABULARY.join(" "), 10, &Filters::default())
            .expect("search");
        assert_eq!(hits.len(), 10, "{hits:?}");

        // The source is re-indexed with its first three chunks only (their
        // ids kept, their text new).
        let mut kept = before.chunks(&[0, 1, 2]).expect("chunks");
        for row in &mut kept {
            row.text = format!("lighthouse keeper {}", row.ordinal);
        }
        index
            .delete_source(user, "document", sources[0])
            .expect("delete");
        index.add(&kept).expect("add");
        index.commit().expect("commit");

        let ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
        let old_rows = before.chunks(&ids).expect("chunks");
        assert_eq!(old_rows.len(), 10, "every hit resolves in its snapshot");
        assert!(old_rows.iter().all(|r| !r.text.starts_with("lighthouse")));
        let now = index.snapshot(user).expect("open").expect("an index");
        assert_eq!(now.chunks(&ids).expect("chunks").len(), 3);
        let found = now
            .search("lighthouse", 10, &Filters::default())
            .expect("search");
        assert_eq!(found.len(), 3, "{found:?}");
        drop((before, now));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A search restricted to some sources finds exactly the hits of those
    /// sources that an unrestricted search finds, with the same scores, and
    /// nothing of another kind or of another user's source of that id.
    #[test]
    fn a_search_restricted_to_sources_finds_only_theirs() {
        let (dir, index) = temp_index();
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = 0x7F4A_7C15_9E37_79B9;
        let sources = add_user(&index, user, 0, 200, &mut state);
        let others = add_user(&index, other, 1_000, 20, &mut state);
        index.commit().expect("commit");
        let chosen = vec![sources[3], sources[11], Uuid::new_v4()];
        let only = Filters {
            sources: chosen.clone(),
            ..Filters::default()
        };
        let snapshot = index.snapshot(user).expect("open").expect("an index");
        let mut ids = snapshot.source_chunk_ids(&only).expect("ids");
        ids.sort_unstable();
        assert_eq!(ids, (30..40).chain(110..120).collect::<Vec<i64>>());

        for query in ["invoice total", "river census meeting", "tax page 2"] {
            let restricted = snapshot.search(query, 500, &only).expect("search");
            let everything = snapshot
                .search(query, 500, &Filters::default())
                .expect("search");
            let mut expected: Vec<(i64, f32)> = everything
                .into_iter()
                .filter(|(id, _)| ids.contains(id))
                .collect();
            let mut restricted_sorted = restricted.clone();
            expected.sort_by_key(|h| h.0);
            restricted_sorted.sort_by_key(|h| h.0);
            assert!(!restricted.is_empty(), "{query:?}");
            assert_eq!(restricted_sorted.len(), expected.len(), "{query:?}");
            for (r, e) in restricted_sorted.iter().zip(&expected) {
                assert_eq!(r.0, e.0, "{query:?}");
                assert!((r.1 - e.1).abs() < 1e-4, "{query:?}: {r:?} {e:?}");
            }
            let emails = Filters {
                kind: Some("email".into()),
                ..only.clone()
            };
            assert!(
                snapshot
                    .search(query, 500, &emails)
                    .expect("search")
                    .is_empty()
            );
        }
        // Another user's source named by its id: nothing of theirs.
        let theirs = Filters {
            sources: others.clone(),
            ..Filters::default()
        };
        assert!(snapshot.source_chunk_ids(&theirs).expect("ids").is_empty());
        assert!(
            snapshot
                .search("invoice total", 50, &theirs)
                .expect("search")
                .is_empty()
        );
        drop(snapshot);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
