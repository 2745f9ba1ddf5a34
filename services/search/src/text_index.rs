//! The BM25 index (tantivy): one index for every user, each document
//! carrying its user id, searched with a user term as a required clause.

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};
use uuid::Uuid;

use crate::analysis::{self, Derived, PARTS, STEMS, WORDS};
use crate::error::{Result, SearchError};

/// Weight of a match on a word's stem, beside the exact word's 1.
const STEM_WEIGHT: f32 = 0.4;
/// Weight of a match inside a compound word.
const PART_WEIGHT: f32 = 0.3;
/// Weight of a match in the source's title.
const TITLE_WEIGHT: f32 = 0.5;
/// Score added to chunks on the page a query names ("table 2 on page 3").
const NAMED_PAGE_SCORE: f32 = 2.0;
const WRITER_MEMORY: usize = 50_000_000;
/// The chunk id's field name.
const ID: &str = "id";

/// What the BM25 index stores of a chunk.
pub struct TextDoc<'a> {
    pub id: i64,
    pub user_id: Uuid,
    pub source_key: &'a str,
    pub kind: &'a str,
    pub category: &'a str,
    pub title: &'a str,
    pub page: i32,
    pub text: &'a str,
}

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
    kind: Field,
    category: Field,
    title: Field,
    page: Field,
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
    let fields = Fields {
        // A fast field: a hit's id is read from a column, not from the
        // compressed document store.
        id: builder.add_i64_field(ID, INDEXED | FAST),
        user: builder.add_text_field("user", STRING),
        source: builder.add_text_field("source", STRING),
        kind: builder.add_text_field("kind", STRING),
        category: builder.add_text_field("category", STRING),
        title: builder.add_text_field("title", text_options.clone()),
        page: builder.add_i64_field("page", INDEXED),
        text: builder.add_text_field("text", text_options),
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

    pub fn add(&self, docs: &[TextDoc<'_>]) -> Result<()> {
        let writer = self.writer()?;
        let f = &self.fields;
        for d in docs {
            writer.add_document(doc!(
                f.id => d.id,
                f.user => d.user_id.to_string(),
                f.source => d.source_key,
                f.kind => d.kind,
                f.category => d.category,
                f.title => d.title,
                f.page => i64::from(d.page),
                f.text => d.text,
                f.stems => d.text,
                f.parts => d.text,
            ))?;
        }
        Ok(())
    }

    pub fn delete_source(&self, key: &str) -> Result<()> {
        self.writer()?
            .delete_term(Term::from_field_text(self.fields.source, key));
        Ok(())
    }

    pub fn delete_user(&self, user_id: Uuid) -> Result<()> {
        self.writer()?.delete_term(Term::from_field_text(
            self.fields.user,
            &user_id.to_string(),
        ));
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
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
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
    pub fn search(
        &self,
        user_id: Uuid,
        query: &str,
        limit: usize,
        filters: &Filters,
    ) -> Result<Vec<(i64, f32)>> {
        let searcher = self.reader.searcher();
        let query = self.user_query(user_id, query, filters);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut columns = Vec::new();
        columns.resize_with(searcher.segment_readers().len(), || None);
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
