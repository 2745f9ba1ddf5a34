//! The context an answer is generated from, and reading the answer back.
//!
//! The default model is small: it answers well from a few short passages
//! and badly from whole chunks, it cannot cite and it does not refuse
//! (FINDINGS). So pai decides those three things itself:
//! - **passages**: the retrieved chunks are cut into windows of
//!   [`WINDOW_WORDS`] words (at most [`WINDOW_CHARS`] characters, a new one
//!   every [`STRIDE_WORDS`] words), scored by BM25 against the question's
//!   terms (lowercased words without stopwords; the chunk's title counts
//!   as part of each window), and the best [`MAX_PASSAGES`] scoring at
//!   least [`RELATIVE_FLOOR`] of the best one are kept, overlapping ones
//!   merged, each widened by [`WIDEN_BEFORE`] words before and
//!   [`WIDEN_AFTER`] after (the answer tends to follow its cue);
//! - **refusal**: the share of the question's term weight (IDF) found in
//!   the best window is its *coverage*; below [`MIN_COVERAGE`], or with no
//!   hit or no term at all, the data does not answer the question and the
//!   model is not called;
//! - **citation**: the answer cites the passage with which it shares the
//!   longest common substring (at least [`MIN_CITED_CHARS`] characters).

use std::collections::{HashMap, HashSet};

/// Words per window.
pub const WINDOW_WORDS: usize = 28;
/// Characters per window at most (a window ends before the word crossing it).
pub const WINDOW_CHARS: usize = 170;
/// A window starts every this many words.
pub const STRIDE_WORDS: usize = 7;
/// Passages in a context at most.
pub const MAX_PASSAGES: usize = 4;
/// A window joins the context when it scores at least this share of the best.
pub const RELATIVE_FLOOR: f32 = 0.35;
/// Words added before a chosen window.
pub const WIDEN_BEFORE: usize = 4;
/// Words added after a chosen window.
pub const WIDEN_AFTER: usize = 14;
/// The question's term weight the best window must hold, or pai refuses.
pub const MIN_COVERAGE: f32 = 0.25;
/// The shortest common substring that makes a citation.
pub const MIN_CITED_CHARS: usize = 3;

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

/// The answer when the user's data does not answer the question.
pub const NOT_IN_YOUR_DATA: &str =
    "Your data does not say: nothing in your documents or emails answers this question.";

/// Words that carry no meaning of their own in a question.
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "been", "being", "but", "by", "can", "could", "did", "do", "does", "for", "from", "given",
    "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "many", "may", "me", "might", "much", "must", "my", "no", "not", "of", "on", "or", "our",
    "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "under", "us", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "you", "your",
];

/// A retrieved chunk, as search returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub source_kind: String,
    pub source_id: String,
    pub title: String,
    pub page: u32,
    pub text: String,
    /// The search score.
    pub score: f32,
}

/// A passage of the context: `[n]` in the prompt and in the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// From 1, best first.
    pub n: u32,
    /// The chunk (an index into the chunks given) it comes from.
    pub chunk: usize,
    pub text: String,
}

/// What pai asks the model, or why it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub passages: Vec<Passage>,
    /// The share of the question's term weight in the best window, 0 to 1.
    pub coverage: f32,
}

impl Context {
    /// Whether the data answers the question well enough to ask the model.
    pub fn answerable(&self) -> bool {
        !self.passages.is_empty() && self.coverage >= MIN_COVERAGE
    }

    /// The user message: numbered passages, the question, the instruction.
    pub fn prompt(&self, question: &str) -> String {
        let mut prompt = String::from(SOURCES_HEADER);
        for passage in &self.passages {
            prompt.push_str(&format!("[{}] {}\n", passage.n, passage.text));
        }
        prompt.push_str(&format!(
            "\nQuestion: {}\nAnswer in a few words, copying the exact value from the sources.",
            question.trim()
        ));
        prompt
    }
}

/// How every prompt starts: the part of it whose KV cache is shared.
pub const SOURCES_HEADER: &str = "Sources:\n";

/// Lowercased words of `text`: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The question's terms: its words without stopwords, each once.
pub fn terms(question: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(question)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

/// A window of a chunk: words `start..end` of its whitespace-split text.
#[derive(Debug, Clone, Copy)]
struct Window {
    chunk: usize,
    start: usize,
    end: usize,
    score: f32,
}

/// Cuts each chunk into overlapping windows of whitespace-separated words.
fn windows(chunks: &[Vec<&str>]) -> Vec<Window> {
    let mut out = Vec::new();
    for (chunk, tokens) in chunks.iter().enumerate() {
        let mut start = 0;
        loop {
            let mut end = start;
            let mut chars = 0;
            while end < tokens.len() && end - start < WINDOW_WORDS {
                chars += tokens[end].chars().count() + 1;
                if chars > WINDOW_CHARS && end > start {
                    break;
                }
                end += 1;
            }
            if end > start {
                out.push(Window {
                    chunk,
                    start,
                    end,
                    score: 0.0,
                });
            }
            if end >= tokens.len() {
                break;
            }
            start += STRIDE_WORDS;
        }
    }
    out
}

/// BM25 inverse document frequency.
fn idf(documents: usize, containing: usize) -> f32 {
    let (n, df) = (documents as f32, containing as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// Chooses the passages for `question` from `chunks` (best search hit first).
pub fn build(question: &str, chunks: &[Chunk]) -> Context {
    let query = terms(question);
    let tokens: Vec<Vec<&str>> = chunks
        .iter()
        .map(|c| c.text.split_whitespace().collect())
        .collect();
    let mut windows = windows(&tokens);
    if query.is_empty() || windows.is_empty() {
        return Context {
            passages: Vec::new(),
            coverage: 0.0,
        };
    }

    // Term counts per window (the title counts as part of every window).
    let titles: Vec<Vec<String>> = chunks.iter().map(|c| words(&c.title).collect()).collect();
    let bags: Vec<HashMap<String, usize>> = windows
        .iter()
        .map(|w| {
            let mut bag = HashMap::new();
            let text = tokens[w.chunk][w.start..w.end].join(" ");
            for word in words(&text).chain(titles[w.chunk].iter().cloned()) {
                *bag.entry(word).or_insert(0) += 1;
            }
            bag
        })
        .collect();
    let lengths: Vec<f32> = bags
        .iter()
        .map(|b| b.values().sum::<usize>() as f32)
        .collect();
    let average = lengths.iter().sum::<f32>() / lengths.len() as f32;
    let weights: Vec<f32> = query
        .iter()
        .map(|t| {
            idf(
                bags.len(),
                bags.iter().filter(|b| b.contains_key(t)).count(),
            )
        })
        .collect();

    for (i, window) in windows.iter_mut().enumerate() {
        window.score = query
            .iter()
            .zip(&weights)
            .map(|(term, weight)| {
                let tf = bags[i].get(term).copied().unwrap_or(0) as f32;
                let norm = BM25_K1 * (1.0 - BM25_B + BM25_B * lengths[i] / average.max(1.0));
                weight * tf * (BM25_K1 + 1.0) / (tf + norm)
            })
            .sum();
    }
    let Some(best) = (0..windows.len()).max_by(|&a, &b| {
        windows[a]
            .score
            .total_cmp(&windows[b].score)
            // Ties go to the earlier window (the better search hit).
            .then(b.cmp(&a))
    }) else {
        return Context {
            passages: Vec::new(),
            coverage: 0.0,
        };
    };
    let total: f32 = weights.iter().sum();
    let found: f32 = query
        .iter()
        .zip(&weights)
        .filter(|(term, _)| bags[best].contains_key(*term))
        .map(|(_, weight)| weight)
        .sum();
    let coverage = if total > 0.0 { found / total } else { 0.0 };

    let best_score = windows[best].score;
    if best_score <= 0.0 {
        return Context {
            passages: Vec::new(),
            coverage,
        };
    }
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by(|&a, &b| {
        windows[b]
            .score
            .total_cmp(&windows[a].score)
            .then(a.cmp(&b))
    });
    let mut chosen: Vec<Window> = Vec::new();
    for i in order {
        let candidate = windows[i];
        if candidate.score < RELATIVE_FLOOR * best_score {
            break;
        }
        if let Some(near) = chosen.iter_mut().find(|c| {
            c.chunk == candidate.chunk && candidate.start <= c.end && c.start <= candidate.end
        }) {
            // A neighbour of a chosen window: merge, up to two windows long.
            let start = near.start.min(candidate.start);
            let end = near.end.max(candidate.end);
            if end - start <= 2 * WINDOW_WORDS {
                near.start = start;
                near.end = end;
            }
            continue;
        }
        if chosen.len() < MAX_PASSAGES {
            chosen.push(candidate);
        }
    }

    // Widen, then merge what now overlaps in the same chunk.
    let mut widened: Vec<Window> = Vec::new();
    for window in chosen {
        let start = window.start.saturating_sub(WIDEN_BEFORE);
        let end = (window.end + WIDEN_AFTER).min(tokens[window.chunk].len());
        match widened
            .iter_mut()
            .find(|w| w.chunk == window.chunk && start <= w.end && w.start <= end)
        {
            Some(w) => {
                w.start = w.start.min(start);
                w.end = w.end.max(end);
            }
            None => widened.push(Window {
                start,
                end,
                ..window
            }),
        }
    }
    let passages = widened
        .into_iter()
        .zip(1u32..)
        .map(|(w, n)| Passage {
            n,
            chunk: w.chunk,
            text: tokens[w.chunk][w.start..w.end].join(" "),
        })
        .collect();
    Context { passages, coverage }
}

/// Lowercases and collapses whitespace, for matching an answer to a passage.
fn normalized(text: &str) -> Vec<char> {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .collect()
}

/// The length of the longest common substring of `a` and `b`.
fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    let mut best = 0;
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            current[j + 1] = if x == y { previous[j] + 1 } else { 0 };
            best = best.max(current[j + 1]);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    best
}

/// The passage `answer` cites: the one sharing the longest common
/// substring with it (ties to the better passage), if that is at least
/// [`MIN_CITED_CHARS`] characters that are not all spaces and punctuation.
pub fn cite(answer: &str, passages: &[Passage]) -> Option<u32> {
    let answer = normalized(answer);
    if !answer.iter().any(|c| c.is_alphanumeric()) {
        return None;
    }
    let mut best: Option<(usize, u32)> = None;
    for passage in passages {
        let length = longest_common_substring(&answer, &normalized(&passage.text));
        if length >= MIN_CITED_CHARS && best.is_none_or(|(l, _)| length > l) {
            best = Some((length, passage.n));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(title: &str, text: &str) -> Chunk {
        Chunk {
            source_kind: "document".into(),
            source_id: title.into(),
            title: title.into(),
            page: 1,
            text: text.into(),
            score: 1.0,
        }
    }

    fn filler(n: usize) -> String {
        (0..n)
            .map(|i| format!("filler{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn terms_drop_stopwords_and_repeats() {
        assert_eq!(
            terms("What is the invoice number of the invoice?"),
            ["invoice", "number"]
        );
        assert!(terms("What is it?").is_empty());
    }

    #[test]
    fn the_passage_holding_the_cue_comes_first_widened_after_it() {
        let text = format!(
            "{} Invoice Number: 42183017 Invoice Date: August 2, 2014 {}",
            filler(60),
            filler(60)
        );
        let chunks = [chunk("aws.pdf", &text), chunk("other.pdf", &filler(80))];
        let context = build("What is the invoice number?", &chunks);
        assert!(context.answerable(), "{context:?}");
        assert_eq!(context.passages[0].n, 1);
        assert_eq!(context.passages[0].chunk, 0);
        assert!(
            context.passages[0]
                .text
                .contains("Invoice Number: 42183017")
        );
        assert!(context.passages.len() <= MAX_PASSAGES);
        assert!(
            context.passages[0].text.split_whitespace().count()
                <= 2 * WINDOW_WORDS + WIDEN_BEFORE + WIDEN_AFTER
        );
        let prompt = context.prompt("What is the invoice number?");
        assert!(prompt.starts_with(SOURCES_HEADER));
        assert!(prompt.contains("[1] "));
        assert!(prompt.contains("Question: What is the invoice number?"));
    }

    #[test]
    fn a_question_whose_terms_are_absent_is_not_answerable() {
        let chunks = [chunk("aws.pdf", "Invoice Number: 42183017 total due $4.11")];
        let context = build("Who won the football world cup in 1954?", &chunks);
        assert!(!context.answerable(), "{context:?}");
        assert!(context.coverage < MIN_COVERAGE);
        // No chunks, or a question of stopwords only: nothing to answer from.
        assert!(!build("What is the invoice number?", &[]).answerable());
        assert!(!build("What is it?", &chunks).answerable());
    }

    #[test]
    fn the_answer_cites_the_passage_it_copies() {
        let passages = vec![
            Passage {
                n: 1,
                chunk: 0,
                text: "Total amount due $4.11 on this invoice".into(),
            },
            Passage {
                n: 2,
                chunk: 1,
                text: "Invoice Number: 42183017 dated August".into(),
            },
        ];
        assert_eq!(cite("The invoice number is 42183017.", &passages), Some(2));
        assert_eq!(cite("$4.11", &passages), Some(1));
        assert_eq!(cite("...", &passages), None);
        assert_eq!(cite("zq", &passages), None);
    }

    #[test]
    fn longest_common_substring_counts_characters() {
        let a: Vec<char> = "abcdef".chars().collect();
        let b: Vec<char> = "zzcdezz".chars().collect();
        assert_eq!(longest_common_substring(&a, &b), 3);
        assert_eq!(longest_common_substring(&a, &[]), 0);
    }
}
