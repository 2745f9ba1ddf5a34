//! The BM25 index (tantivy): one index for every user, each document
//! carrying its user id, searched with a user term as a required clause.

use std::path::Path;
use std::sync::Mutex;

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery, Weight,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{
    DocAddress, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TERMINATED, TantivyDocument,
    Term, doc,
};
use uuid::Uuid;

use crate::analysis::{self, Derived, PARTS, STEMS, WORDS};
use crate::error::{Result, SearchError};
use crate::repo::ChunkRow;
use crate::top_hits::TopHits;

/// Weight of a match on a word's stem, beside the exact word's 1.
const STEM_WEIGHT: f32 = 0.4;
/// Weight of a match inside a compound word.
const PART_WEIGHT: f32 = 0.3;
/// Weight of a match in the source's title.
const TITLE_WEIGHT: f32 = 0.5;
/// Score added to chunks on the page a query names ("table 2 on page 3").
const NAMED_PAGE_SCORE: f32 = 2.0;
const WRITER_MEMORY: usize = 50_000_000;
/// Tries at rewriting the segments that held an erased user's chunks.
const ERASE_ROUNDS: usize = 50;
/// The chunk id's field name.
const ID: &str = "id";
/// A segment is searched by pruning when the caller owns at least one in
/// this many of its chunks.
const PRUNE_AT_SHARE: u64 = 32;

/// Filters applied inside the index.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub kind: Option<String>,
    pub category: Option<String>,
}

impl Filters {
    /// Whether a chunk of this source kind and category passes.
    pub fn admit(&self, kind: &str, category: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind)
            && self.category.as_deref().is_none_or(|c| c == category)
    }
}

struct Fields {
    id: Field,
    user: Field,
    source: Field,
    source_id: Field,
    kind: Field,
    category: Field,
    title: Field,
    page: Field,
    ordinal: Field,
    created: Field,
    text: Field,
    stems: Field,
    parts: Field,
}

pub struct TextIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
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
        user: builder.add_text_field("user", STRING | STORED),
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

impl TextIndex {
    /// Opens the index in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
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
        let writer = Self::writer_when_free(&index)?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    /// Takes the index's writer lock, waiting a while for a previous
    /// instance in this process (a restarted service) to let it go.
    fn writer_when_free(index: &Index) -> Result<IndexWriter> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match index.writer(WRITER_MEMORY) {
                Err(tantivy::TantivyError::LockFailure(_, _))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return Ok(other?),
            }
        }
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, IndexWriter>> {
        self.writer
            .lock()
            .map_err(|_| SearchError::VectorIndex("text index writer poisoned".into()))
    }

    pub fn add<'a>(&self, chunks: impl IntoIterator<Item = &'a ChunkRow>) -> Result<()> {
        let writer = self.writer()?;
        let f = &self.fields;
        for c in chunks {
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
    }

    /// The caller's chunks among `ids`, read from the document store (the
    /// rows of `search.chunks` as the index last saw them); ids of deleted
    /// chunks and of other users' are left out.
    pub fn chunks(&self, user_id: Uuid, ids: &[i64]) -> Result<Vec<ChunkRow>> {
        let searcher = self.reader.searcher();
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let term = Term::from_field_i64(self.fields.id, id);
            // A re-indexed chunk keeps its id: the old entry stays, deleted,
            // in an older segment.
            'segments: for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                let Some(mut postings) = segment
                    .inverted_index(self.fields.id)?
                    .read_postings(&term, IndexRecordOption::Basic)?
                else {
                    continue;
                };
                let alive = segment.alive_bitset();
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        let stored: TantivyDocument =
                            searcher.doc(DocAddress::new(ord as u32, doc))?;
                        rows.extend(self.row(id, &stored).filter(|r| r.user_id == user_id));
                        break 'segments;
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(rows)
    }

    /// A chunk's row from its stored fields; `None` when one is missing or
    /// malformed.
    fn row(&self, id: i64, stored: &TantivyDocument) -> Option<ChunkRow> {
        let f = &self.fields;
        let text = |field| stored.get_first(field).and_then(|v| v.as_str());
        let number = |field| stored.get_first(field).and_then(|v| v.as_i64());
        Some(ChunkRow {
            id,
            user_id: Uuid::parse_str(text(f.user)?).ok()?,
            source_kind: text(f.kind)?.to_owned(),
            source_id: Uuid::parse_str(text(f.source_id)?).ok()?,
            ordinal: i32::try_from(number(f.ordinal)?).ok()?,
            title: text(f.title)?.to_owned(),
            category: text(f.category)?.to_owned(),
            page: i32::try_from(number(f.page)?).ok()?,
            text: text(f.text)?.to_owned(),
            created_at: chrono::DateTime::from_timestamp_micros(number(f.created)?)?,
        })
    }

    pub fn delete_source(&self, key: &str) -> Result<()> {
        self.writer()?
            .delete_term(Term::from_field_text(self.fields.source, key));
        Ok(())
    }

    /// Deletes every chunk of a user and commits, then rewrites the segments
    /// that held them: a deleted document only leaves the disk when its
    /// segment is merged, and the document store keeps the chunk's text.
    pub fn erase_user(&self, user_id: Uuid) -> Result<()> {
        let term = Term::from_field_text(self.fields.user, &user_id.to_string());
        let mut writer = self.writer()?;
        writer.delete_term(term.clone());
        writer.commit()?;
        // A segment a background merge holds is refused until that merge
        // ends; a merge started before the delete keeps the deleted
        // documents, so each round looks again at what the disk holds.
        let mut refused = None;
        for _ in 0..ERASE_ROUNDS {
            self.reader.reload()?;
            let mut held = Vec::new();
            for segment in self.reader.searcher().segment_readers() {
                if segment.inverted_index(self.fields.user)?.doc_freq(&term)? > 0 {
                    held.push(segment.segment_id());
                }
            }
            if held.is_empty() {
                return Ok(());
            }
            match writer.merge(&held).wait() {
                Ok(_) => {
                    writer.garbage_collect_files().wait()?;
                }
                Err(err) => {
                    refused = Some(err);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        tracing::warn!(%user_id, error = ?refused, "erased chunks stay on disk until the next merge");
        Ok(())
    }

    pub fn clear(&self) -> Result<()> {
        self.writer()?.delete_all_documents()?;
        Ok(())
    }

    /// Makes every change durable and visible to searches.
    pub fn commit(&self) -> Result<()> {
        self.writer()?.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The query's meaningful words as terms: any of them in the text,
    /// exactly or, when `loosely`, also by stem, inside a compound or in
    /// the title (snippets highlight exact words only). What a user types
    /// is words, not a query language: no phrases, field prefixes or
    /// operators (a quoted phrase beside the user term also tripped an
    /// assertion inside tantivy).
    fn words_query(&self, query: &str, loosely: bool) -> Box<dyn Query> {
        let f = &self.fields;
        let term = |field, text: &str, weight: f32| -> (Occur, Box<dyn Query>) {
            let query = TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::WithFreqs,
            );
            (
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(query), weight)),
            )
        };
        let words = analysis::query_words(query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut stems: Vec<&str> = Vec::new();
        for word in &words {
            clauses.push(term(f.text, word, 1.0));
            if !loosely {
                continue;
            }
            clauses.push(term(f.title, word, TITLE_WEIGHT));
            clauses.push(term(f.parts, word, PART_WEIGHT));
            if let Some(stem) = analysis::stem(word)
                && !stems.contains(&stem)
            {
                stems.push(stem);
                clauses.push(term(f.stems, stem, STEM_WEIGHT));
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn user_query(&self, user_id: Uuid, query: &str, filters: &Filters) -> Box<dyn Query> {
        let f = &self.fields;
        let text_query = self.words_query(query, true);
        // Required terms score nothing, so the scores are the words' own
        // whichever way a segment is searched.
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(ConstScoreQuery::new(
                Box::new(TermQuery::new(
                    Term::from_field_text(field, value),
                    IndexRecordOption::Basic,
                )),
                0.0,
            ))
        };
        let mut clauses = vec![
            (Occur::Must, text_query),
            (Occur::Must, term(f.user, &user_id.to_string())),
        ];
        if let Some(page) = named_page(query) {
            let on_page =
                TermQuery::new(Term::from_field_i64(f.page, page), IndexRecordOption::Basic);
            clauses.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(Box::new(on_page), NAMED_PAGE_SCORE)),
            ));
        }
        if let Some(kind) = &filters.kind {
            clauses.push((Occur::Must, term(f.kind, kind)));
        }
        if let Some(category) = &filters.category {
            clauses.push((Occur::Must, term(f.category, category)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Returns the caller's best chunks for `query`: (chunk id, BM25 score).
    ///
    /// Each segment is searched one of two ways, with the same scores:
    /// where the caller owns few of its chunks, the caller's postings drive
    /// an intersection with the words; where they own many
    /// ([`PRUNE_AT_SHARE`]), the words alone run tantivy's block-max WAND
    /// (which skips blocks of postings that cannot reach the best `limit`)
    /// and each hit is checked against the caller's postings. A user with
    /// 100,000 of 300,000 chunks made the intersection read every chunk that
    /// has any of the words, for every user.
    pub fn search(
        &self,
        user_id: Uuid,
        query: &str,
        limit: usize,
        filters: &Filters,
    ) -> Result<Vec<(i64, f32)>> {
        let searcher = self.reader.searcher();
        let user = Term::from_field_text(self.fields.user, &user_id.to_string());
        // Filters and a named page add required or scoring clauses beyond the
        // words: those searches always intersect.
        let may_prune =
            filters.kind.is_none() && filters.category.is_none() && named_page(query).is_none();
        let mut words: Option<Box<dyn Weight>> = None;
        let mut whole: Option<Box<dyn Weight>> = None;
        let mut top = TopHits::new(limit);
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let segment_ord = ord as u32;
            let Some(mut owned) = segment
                .inverted_index(self.fields.user)?
                .read_postings(&user, IndexRecordOption::Basic)?
            else {
                continue;
            };
            let alive = segment.alive_bitset();
            let prune = may_prune
                && u64::from(owned.doc_freq()) * PRUNE_AT_SHARE >= u64::from(segment.max_doc());
            let weight = match (prune, &mut words, &mut whole) {
                (true, Some(weight), _) | (false, _, Some(weight)) => weight,
                (true, empty, _) => empty.insert(
                    self.words_query(query, true)
                        .weight(EnableScoring::enabled_from_searcher(&searcher))?,
                ),
                (false, _, empty) => empty.insert(
                    self.user_query(user_id, query, filters)
                        .weight(EnableScoring::enabled_from_searcher(&searcher))?,
                ),
            };
            weight.for_each_pruning(top.threshold(), segment, &mut |doc, score| {
                // WAND hands over hits in increasing doc order, so the
                // caller's postings only ever move forward.
                if prune && owned.doc() < doc {
                    owned.seek(doc);
                }
                let caller_owns = !prune || owned.doc() == doc;
                if caller_owns && alive.is_none_or(|a| a.is_alive(doc)) {
                    top.push(score, segment_ord, doc);
                }
                top.threshold()
            })?;
        }
        let mut columns = Vec::new();
        columns.resize_with(searcher.segment_readers().len(), || None);
        let top = top.into_sorted();
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = match &mut columns[address.segment_ord as usize] {
                Some(column) => column,
                empty => empty.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .i64(ID)?,
                ),
            };
            if let Some(id) = column.first(address.doc_id) {
                hits.push((id, score));
            }
        }
        Ok(hits)
    }

    /// Returns a generator that highlights `query`'s words in any text.
    pub fn snippets(&self, query: &str) -> Result<SnippetGenerator> {
        let searcher = self.reader.searcher();
        let query = self.words_query(query, false);
        let mut generator = SnippetGenerator::create(&searcher, &*query, self.fields.text)?;
        generator.set_max_num_chars(240);
        Ok(generator)
    }
}

/// The page a query names: "page 3", "on pages 3", "p. 3", "Seite 3".
fn named_page(query: &str) -> Option<i64> {
    let mut analyzer = analysis::words();
    let mut stream = analyzer.token_stream(query);
    let mut previous = String::new();
    while stream.advance() {
        let word = &stream.token().text;
        if matches!(previous.as_str(), "page" | "pages" | "p" | "seite")
            && let Ok(page) = word.parse::<i64>()
        {
            return Some(page);
        }
        previous.clone_from(word);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOCABULARY: [&str; 24] = [
        "invoice", "total", "river", "census", "meeting", "school", "board", "amount", "lecture",
        "geology", "rock", "layer", "payment", "due", "vote", "budget", "map", "survey", "water",
        "tax", "report", "season", "harvest", "bridge",
    ];

    /// An empty index in a folder of its own (the test removes it).
    fn temp_index() -> (std::path::PathBuf, TextIndex) {
        let dir = std::env::temp_dir().join(format!("pai-text-{}", Uuid::new_v4()));
        let index = TextIndex::open(&dir).expect("open");
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
    ) -> Vec<String> {
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        let mut source_id = Uuid::nil();
        for n in 0..count {
            if n % 10 == 0 {
                source_id = Uuid::new_v4();
                keys.push(source_key(user, "document", source_id));
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
        keys
    }

    /// A user owning most of the index is searched by pruning, one owning
    /// little by intersecting (a kind filter forces that way): both find
    /// the same hits with the same scores, only the user's own, and never
    /// a deleted chunk.
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
            category: None,
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
        index.delete_source(&sources[0]).expect("delete");
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
        assert_eq!(
            source_key(owner, &row.source_kind, row.source_id),
            sources[0]
        );
        assert_eq!(
            index.chunks(other, &[105]).expect("chunks")[0].user_id,
            other
        );

        // The first source is replaced: same ids, new text; then the second
        // is deleted.
        index.delete_source(&sources[0]).expect("delete");
        let mut replaced = rows[0].clone();
        replaced.text = "replacement text".into();
        index.add([&replaced]).expect("add");
        index.delete_source(&sources[1]).expect("delete");
        index.commit().expect("commit");
        let rows = index.chunks(owner, &[3, 12]).expect("chunks");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].id, rows[0].text.as_str()), (3, "replacement text"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Erasing a user leaves no segment holding their chunks, deleted or not,
    /// and keeps everyone else's.
    #[test]
    fn an_erased_user_leaves_no_chunk_on_disk() {
        let (dir, index) = temp_index();
        let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = 0x1234_5678_9ABC_DEF1;
        // Two commits: two segments, each with chunks of both users.
        for first in [0, 1_000] {
            add_user(&index, gone, first, 30, &mut state);
            add_user(&index, kept, first + 500, 30, &mut state);
            index.commit().expect("commit");
        }
        index.erase_user(gone).expect("erase");
        let searcher = index.reader.searcher();
        let term = |user: Uuid| Term::from_field_text(index.fields.user, &user.to_string());
        let mut kept_docs = 0;
        for segment in searcher.segment_readers() {
            let users = segment.inverted_index(index.fields.user).expect("postings");
            assert_eq!(users.doc_freq(&term(gone)).expect("freq"), 0);
            assert_eq!(segment.num_deleted_docs(), 0);
            kept_docs += users.doc_freq(&term(kept)).expect("freq");
        }
        assert_eq!(kept_docs, 60);
        assert!(index.chunks(gone, &[0, 1_000]).expect("chunks").is_empty());
        assert_eq!(index.chunks(kept, &[500, 1_500]).expect("chunks").len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_query_can_name_a_page() {
        assert_eq!(
            named_page("What is the title of Table 2 (page 3)?"),
            Some(3)
        );
        assert_eq!(named_page("p. 12 totals"), Some(12));
        assert_eq!(named_page("the page count is high"), None);
        assert_eq!(named_page("Table 2"), None);
    }
}
