//! Reading one user's BM25 index: ranking, hydrating and highlighting hits,
//! all from one snapshot of it ([`TextSnapshot`]). A commit that lands
//! while a search runs (a document being re-indexed) changes nothing that
//! search reads: its hits resolve to the rows of the commit they were
//! ranked in, the old version or the new, never to nothing.

use std::collections::HashSet;

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TokenStream;
use tantivy::{DocAddress, DocSet, Searcher, TERMINATED, TantivyDocument, Term};
use uuid::Uuid;

use crate::analysis;
use crate::error::Result;
use crate::open_users::Open;
use crate::repo::ChunkRow;
use crate::text_index::{Fields, ID, SOURCE_KINDS, UserText, source_key};
use crate::top_hits::TopHits;

/// Weight of a match on a word's stem, beside the exact word's 1.
const STEM_WEIGHT: f32 = 0.4;
/// Weight of a match inside a compound word.
const PART_WEIGHT: f32 = 0.3;
/// Weight of a match in the source's title.
const TITLE_WEIGHT: f32 = 0.5;
/// Score added to chunks on the page a query names ("table 2 on page 3").
const NAMED_PAGE_SCORE: f32 = 2.0;

/// Filters applied inside the index.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub kind: Option<String>,
    pub category: Option<String>,
    /// Only chunks of these sources (document or email ids); empty for all.
    pub sources: Vec<Uuid>,
}

impl Filters {
    /// Whether every chunk passes.
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.category.is_none() && self.sources.is_empty()
    }

    /// Whether `chunk` passes.
    pub fn admit(&self, chunk: &ChunkRow) -> bool {
        self.kind.as_deref().is_none_or(|k| k == chunk.source_kind)
            && self.category.as_deref().is_none_or(|c| c == chunk.category)
            && (self.sources.is_empty() || self.sources.contains(&chunk.source_id))
    }

    /// The index terms of the sources named, of the user's: one per source
    /// and kind the kind filter leaves (a source's term names its kind).
    fn source_terms(&self, field: Field, user_id: Uuid) -> Vec<Term> {
        let kinds: Vec<&str> = match &self.kind {
            Some(kind) => vec![kind.as_str()],
            None => SOURCE_KINDS.to_vec(),
        };
        self.sources
            .iter()
            .flat_map(|source_id| {
                kinds.iter().map(move |kind| {
                    Term::from_field_text(field, &source_key(user_id, kind, *source_id))
                })
            })
            .collect()
    }
}

/// One user's index as one commit left it. It keeps the index open (and
/// counted in use) while it lives.
pub struct TextSnapshot {
    user_id: Uuid,
    searcher: Searcher,
    fields: Fields,
    _open: Open<UserText>,
}

impl TextSnapshot {
    pub(crate) fn new(user_id: Uuid, user: Open<UserText>, fields: Fields) -> Self {
        Self {
            user_id,
            searcher: user.reader.searcher(),
            fields,
            _open: user,
        }
    }

    /// Returns the best chunks for `query`: (chunk id, BM25 score).
    ///
    /// The words alone, the common case, run tantivy's block-max WAND over
    /// the user's index (which skips blocks of postings that cannot reach
    /// the best `limit`); filters and a named page add required or scoring
    /// clauses, and those searches intersect.
    pub fn search(&self, query: &str, limit: usize, filters: &Filters) -> Result<Vec<(i64, f32)>> {
        let searcher = &self.searcher;
        let query = if filters.is_empty() && named_page(query).is_none() {
            self.fields.words_query(query, true)
        } else {
            self.fields.filtered_query(query, filters, self.user_id)
        };
        let weight = query.weight(EnableScoring::enabled_from_searcher(searcher))?;
        let mut top = TopHits::new(limit);
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let segment_ord = ord as u32;
            let alive = segment.alive_bitset();
            weight.for_each_pruning(top.threshold(), segment, &mut |doc, score| {
                if alive.is_none_or(|a| a.is_alive(doc)) {
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

    /// The ids of every chunk of the sources `filters` names (of the kind
    /// it names, when it does).
    pub fn source_chunk_ids(&self, filters: &Filters) -> Result<Vec<i64>> {
        let terms = filters.source_terms(self.fields.source, self.user_id);
        let mut ids = Vec::new();
        for segment in self.searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.source)?;
            let alive = segment.alive_bitset();
            let column = segment.fast_fields().i64(ID)?;
            for term in &terms {
                let Some(mut postings) = inverted.read_postings(term, IndexRecordOption::Basic)?
                else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        ids.extend(column.first(doc));
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(ids)
    }

    /// The user's chunks among `ids`, read from the document store (the
    /// rows of `search.chunks` as this commit saw them); ids it does not
    /// hold are left out.
    pub fn chunks(&self, ids: &[i64]) -> Result<Vec<ChunkRow>> {
        let searcher = &self.searcher;
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
                        // The folder is the user's; the stored owner is
                        // checked all the same.
                        rows.extend(
                            self.fields
                                .row(id, &stored)
                                .filter(|r| r.user_id == self.user_id),
                        );
                        break 'segments;
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(rows)
    }

    /// Returns a generator that highlights `query`'s words in any text.
    pub fn snippets(&self, query: &str) -> Result<SnippetGenerator> {
        let query = self.fields.words_query(query, false);
        let mut generator = SnippetGenerator::create(&self.searcher, &*query, self.fields.text)?;
        generator.set_max_num_chars(240);
        Ok(generator)
    }
}

impl Fields {
    /// A chunk's row from its stored fields; `None` when one is missing or
    /// malformed.
    fn row(&self, id: i64, stored: &TantivyDocument) -> Option<ChunkRow> {
        let text = |field| stored.get_first(field).and_then(|v| v.as_str());
        let number = |field| stored.get_first(field).and_then(|v| v.as_i64());
        Some(ChunkRow {
            id,
            user_id: Uuid::parse_str(text(self.user)?).ok()?,
            source_kind: text(self.kind)?.to_owned(),
            source_id: Uuid::parse_str(text(self.source_id)?).ok()?,
            ordinal: i32::try_from(number(self.ordinal)?).ok()?,
            title: text(self.title)?.to_owned(),
            category: text(self.category)?.to_owned(),
            page: i32::try_from(number(self.page)?).ok()?,
            text: text(self.text)?.to_owned(),
            created_at: chrono::DateTime::from_timestamp_micros(number(self.created)?)?,
        })
    }

    /// The query's meaningful words as terms: any of them in the text,
    /// exactly or, when `loosely`, also by stem, inside a compound or in
    /// the title (snippets highlight exact words only). What a user types
    /// is words, not a query language: no phrases, field prefixes or
    /// operators (a quoted phrase beside the user term also tripped an
    /// assertion inside tantivy).
    fn words_query(&self, query: &str, loosely: bool) -> Box<dyn Query> {
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
        let mut stems: HashSet<&str> = HashSet::new();
        for word in &words {
            clauses.push(term(self.text, word, 1.0));
            if !loosely {
                continue;
            }
            clauses.push(term(self.title, word, TITLE_WEIGHT));
            clauses.push(term(self.parts, word, PART_WEIGHT));
            if let Some(stem) = analysis::stem(word)
                && stems.insert(stem)
            {
                clauses.push(term(self.stems, stem, STEM_WEIGHT));
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The words, then what a filter or a named page requires or adds.
    fn filtered_query(&self, query: &str, filters: &Filters, user_id: Uuid) -> Box<dyn Query> {
        let text_query = self.words_query(query, true);
        // Required terms score nothing: the scores are the words' own.
        let required = |query: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
        };
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let mut clauses = vec![(Occur::Must, text_query)];
        if let Some(page) = named_page(query) {
            let on_page = TermQuery::new(
                Term::from_field_i64(self.page, page),
                IndexRecordOption::Basic,
            );
            clauses.push((
                Occur::Should,
                Box::new(ConstScoreQuery::new(Box::new(on_page), NAMED_PAGE_SCORE)),
            ));
        }
        if let Some(kind) = &filters.kind {
            clauses.push(required(term(self.kind, kind)));
        }
        if let Some(category) = &filters.category {
            clauses.push(required(term(self.category, category)));
        }
        if !filters.sources.is_empty() {
            let sources = TermSetQuery::new(filters.source_terms(self.source, user_id));
            clauses.push(required(Box::new(sources)));
        }
        Box::new(BooleanQuery::new(clauses))
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

    #[test]
    fn filters_admit_only_the_sources_named() {
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let row = |source_id| ChunkRow {
            id: 1,
            user_id: Uuid::nil(),
            source_kind: "document".into(),
            source_id,
            ordinal: 0,
            title: String::new(),
            category: "generic".into(),
            page: 1,
            text: String::new(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        };
        let all = Filters::default();
        assert!(all.is_empty());
        assert!(all.admit(&row(other)));
        let only_mine = Filters {
            sources: vec![mine],
            ..Filters::default()
        };
        assert!(!only_mine.is_empty());
        assert!(only_mine.admit(&row(mine)));
        assert!(!only_mine.admit(&row(other)));
        let emails_of_mine = Filters {
            kind: Some("email".into()),
            ..only_mine
        };
        assert!(!emails_of_mine.admit(&row(mine)));
    }
}
