//! How text becomes BM25 terms. Three views of the same words, each in its
//! own field, so a query matches exactly first and loosely after:
//! - words: lowercased, accents folded ("Rechnungsbetrag" → "rechnungsbetrag");
//! - stems: each word of at least [`STEM_LETTERS`] letters cut to that
//!   many, a language-blind stemmer ("registered", "registry" → "regist");
//!   shorter words are their own stems and only in the words field;
//! - parts: the tails of long words, so the head of a compound is found
//!   ("wintersemester" → …, "semester", …; German and Dutch join nouns).
//!
//! tantivy's English `Stemmer` and `StopWordFilter` in their place found
//! one corpus fact fewer by BM25 and no compound heads, at no gain in
//! latency (docs/adr/0004-per-user-derived-search-indexes.md).

use std::collections::HashSet;

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

pub const WORDS: &str = "pai";
pub const STEMS: &str = "pai_stems";
pub const PARTS: &str = "pai_parts";

/// Letters a word keeps in the stems field.
const STEM_LETTERS: usize = 6;
/// The shortest tail the parts field keeps.
const PART_LETTERS: usize = 6;
/// Letters a compound's first member has at least.
const HEAD_LETTERS: usize = 3;

/// The words analyzer: what search matches exactly.
pub fn words() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Words that carry no meaning in a question: Lucene's English stop words
/// and the question words. A query drops them (unless it is nothing else);
/// the index keeps every word.
const QUERY_STOP_WORDS: [&str; 52] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "what", "which", "who", "whom", "whose", "when",
    "where", "why", "how", "many", "much", "does", "do", "did", "has", "have", "had", "were",
    "been",
];

/// The words of a query that carry its meaning, in order, each once: its
/// words without [`QUERY_STOP_WORDS`] and single letters ("U.S." is "u"
/// and "s", "user's" ends in "s"), or all of them when that is all it has.
/// Single letters are in most chunks: "u" and "s" made one question's BM25
/// search take 5.9 ms over one user's 100,000 chunks, against 0.44 ms on
/// average (bench-search (b)). Single digits stay ("table 2").
pub fn query_words(query: &str) -> Vec<String> {
    let words = distinct_words(query);
    let meaningful: Vec<String> = words
        .iter()
        .filter(|word| !QUERY_STOP_WORDS.contains(&word.as_str()) && !is_letter(word))
        .cloned()
        .collect();
    if meaningful.is_empty() {
        words
    } else {
        meaningful
    }
}

/// Whether `word` is one letter (not a digit).
fn is_letter(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_numeric())
}

/// The words of `text`, in order, each once (a set remembers the words
/// seen, so this is linear in the words, not quadratic).
fn distinct_words(text: &str) -> Vec<String> {
    let mut analyzer = words();
    let mut stream = analyzer.token_stream(text);
    let mut seen: HashSet<String> = HashSet::new();
    let mut found: Vec<String> = Vec::new();
    while stream.advance() {
        let word = &stream.token().text;
        if seen.insert(word.clone()) {
            found.push(word.clone());
        }
    }
    found
}

/// A word's stem: its first [`STEM_LETTERS`] letters, when it has that many.
pub fn stem(word: &str) -> Option<&str> {
    let mut letters = word.char_indices().map(|(at, _)| at).chain([word.len()]);
    letters.nth(STEM_LETTERS).map(|at| &word[..at])
}

/// The tails of a long word that could be the head of a compound, longest
/// first; empty for words too short to be one.
fn parts(word: &str) -> impl Iterator<Item = &str> {
    let starts: Vec<usize> = word.char_indices().map(|(at, _)| at).collect();
    let last = starts.len().saturating_sub(PART_LETTERS);
    // No tails when the word is too short to hold a head and a part.
    let first = if starts.len() >= HEAD_LETTERS + PART_LETTERS {
        HEAD_LETTERS
    } else {
        last + 1
    };
    (first..=last).map(move |i| &word[starts[i]..])
}

#[derive(Debug, Clone, Copy)]
enum View {
    Stems,
    Parts,
}

/// A tokenizer deriving stems or parts from the words analyzer's tokens.
#[derive(Clone)]
pub struct Derived {
    view: View,
    words: TextAnalyzer,
    tokens: Vec<Token>,
}

impl Derived {
    pub fn stems() -> Self {
        Self::new(View::Stems)
    }

    pub fn parts() -> Self {
        Self::new(View::Parts)
    }

    fn new(view: View) -> Self {
        Self {
            view,
            words: words(),
            tokens: Vec::new(),
        }
    }
}

impl Tokenizer for Derived {
    type TokenStream<'a> = Tokens<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens<'a> {
        self.tokens.clear();
        let mut stream = self.words.token_stream(text);
        while stream.advance() {
            let word = stream.token();
            match self.view {
                View::Stems => self.tokens.extend(stem(&word.text).map(|stem| Token {
                    text: stem.to_owned(),
                    ..word.clone()
                })),
                View::Parts => self.tokens.extend(parts(&word.text).map(|part| Token {
                    text: part.to_owned(),
                    ..word.clone()
                })),
            }
        }
        Tokens {
            tokens: &mut self.tokens,
            at: None,
        }
    }
}

/// A stream over tokens already made.
pub struct Tokens<'a> {
    tokens: &'a mut [Token],
    at: Option<usize>,
}

impl TokenStream for Tokens<'_> {
    fn advance(&mut self) -> bool {
        let next = self.at.map_or(0, |at| at + 1);
        self.at = Some(next);
        next < self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.at.unwrap_or(0)]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.at.unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(mut tokenizer: Derived, text: &str) -> Vec<String> {
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn stems_join_word_forms() {
        assert_eq!(
            texts(Derived::stems(), "U.S.-registered airplanes; U.S. registry"),
            ["regist", "airpla", "regist"]
        );
        assert_eq!(stem("affect"), Some("affect"));
        assert_eq!(stem("affects"), Some("affect"));
        assert_eq!(stem("tax"), None);
        assert_eq!(stem("größenordnung"), Some("größen"));
    }

    #[test]
    fn parts_find_the_head_of_a_compound() {
        let parts = texts(Derived::parts(), "Wintersemester 2013/2014, Skript");
        assert!(parts.contains(&"semester".to_owned()), "{parts:?}");
        assert!(!parts.contains(&"wintersemester".to_owned()), "{parts:?}");
        assert!(parts.iter().all(|p| p.chars().count() >= PART_LETTERS));
        assert_eq!(
            texts(Derived::parts(), "invoice total 2013"),
            Vec::<String>::new()
        );
        assert_eq!(super::parts("abcdefghi").collect::<Vec<_>>(), ["defghi"]);
    }

    #[test]
    fn a_query_keeps_the_words_that_carry_its_meaning() {
        assert_eq!(
            query_words("In which semester was the script written?"),
            ["semester", "script", "written"]
        );
        assert_eq!(query_words("What is this?"), ["what", "is", "this"]);
        assert_eq!(
            query_words("How many U.S.-registered airplanes does table 2 list?"),
            ["registered", "airplanes", "table", "2", "list"]
        );
    }

    #[test]
    fn many_distinct_words_are_listed_in_linear_time() {
        // 100,000 distinct words: a list searched for each word made ~5e9
        // comparisons (minutes); a set takes well under a second.
        let text: String = (0..100_000).map(|i| format!("w{i} w{i} ")).collect();
        let started = std::time::Instant::now();
        let words = distinct_words(&text);
        let took = started.elapsed();
        assert_eq!(words.len(), 100_000);
        assert_eq!(words[99_999], "w99999");
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn words_are_folded_and_listed_once() {
        assert_eq!(
            distinct_words("Rechnungsbetrag: Café, café, CAFÉ"),
            ["rechnungsbetrag", "cafe"]
        );
    }
}
