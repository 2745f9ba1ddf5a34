//! Splitting page text into overlapping passages for embedding and citation.

use serde::{Deserialize, Serialize};

use crate::Page;

/// The number of words a chunk aims for: all-MiniLM-L6-v2 reads at most 256
/// word pieces, and 120 words of prose or numbers stay below that.
pub const DEFAULT_TARGET_WORDS: usize = 120;
/// The number of words consecutive chunks of a page share, so that a fact cut
/// by a boundary still appears whole in one of them.
pub const DEFAULT_OVERLAP_WORDS: usize = 20;

/// A passage of one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The 0-based position of the chunk in the document.
    pub ordinal: u32,
    /// The 1-based number of the page the chunk comes from.
    pub page: u32,
    /// The byte offset where the chunk starts in that page's text.
    pub start: usize,
    /// The byte offset where the chunk ends in that page's text (exclusive).
    pub end: usize,
    /// `page.text[start..end]`.
    pub text: String,
}

/// A word: its byte span in the page text and whether a sentence or a
/// paragraph ends with it.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    ends_sentence: bool,
}

/// Splits pages into chunks of about `target_words` words, consecutive chunks
/// of a page sharing at least `overlap_words` words.
///
/// Chunks never cross a page, so every chunk cites one page, and they start
/// and end on whole words. A chunk ends at the last sentence or paragraph end
/// in the final third of its window when there is one, so passages read
/// naturally; the next chunk starts `overlap_words` earlier, moved back to a
/// sentence start when one is near. A page's words are spread evenly over its
/// chunks, so no page ends in a short tail. Words are runs of
/// non-space characters, except that each CJK character counts as a word
/// (Chinese and Japanese are written without spaces). Pages with no words
/// give no chunk. `target_words` is at least 1 and `overlap_words` at most
/// half of it.
pub fn chunk(pages: &[Page], target_words: usize, overlap_words: usize) -> Vec<Chunk> {
    let target = target_words.max(1);
    let overlap = overlap_words.min(target / 2);
    let mut chunks = Vec::new();
    for page in pages {
        let words = words(&page.text);
        for (first, last) in windows(&words, target, overlap) {
            let (start, end) = (words[first].start, words[last].end);
            chunks.push(Chunk {
                ordinal: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                page: page.number,
                start,
                end,
                text: page.text[start..end].to_owned(),
            });
        }
    }
    chunks
}

/// Returns the inclusive word ranges of a page's chunks.
///
/// The window is the page's words spread evenly over as many chunks as
/// `target` requires, so a page of 130 words gives two chunks of 75 rather
/// than one of 120 and a tail of 30.
fn windows(words: &[Word], target: usize, overlap: usize) -> Vec<(usize, usize)> {
    let count = words.len();
    let mut ranges = Vec::new();
    if count == 0 {
        return ranges;
    }
    let stride = target - overlap;
    let chunk_count = count.saturating_sub(overlap).div_ceil(stride).max(1);
    let size = (count + (chunk_count - 1) * overlap).div_ceil(chunk_count);
    let mut first = 0;
    loop {
        if count - first <= target {
            ranges.push((first, count - 1));
            return ranges;
        }
        let mut end = first + size; // exclusive
        let earliest_break = first + (size * 2 / 3).max(overlap + 1);
        if let Some(last) = (earliest_break..end)
            .rev()
            .find(|&index| words[index].ends_sentence)
        {
            end = last + 1;
        }
        ranges.push((first, end - 1));
        let mut next = end - overlap;
        let furthest_back = end.saturating_sub(2 * overlap).max(first + 1);
        if let Some(start) = (furthest_back..next)
            .rev()
            .find(|&index| words[index - 1].ends_sentence)
        {
            next = start;
        }
        first = next;
    }
}

/// Splits text into words with their byte spans.
fn words(text: &str) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut current: Option<usize> = None;
    for (index, character) in text.char_indices() {
        let cjk = is_cjk(character);
        if character.is_whitespace() || cjk {
            if let Some(start) = current.take() {
                words.push(word(text, start, index));
            }
            if cjk {
                words.push(word(text, index, index + character.len_utf8()));
            }
        } else if current.is_none() {
            current = Some(index);
        }
    }
    if let Some(start) = current {
        words.push(word(text, start, text.len()));
    }
    words
}

/// Builds a word, noting whether a sentence or paragraph ends with it.
fn word(text: &str, start: usize, end: usize) -> Word {
    let last = text[start..end].chars().next_back();
    let closes_sentence =
        last.is_some_and(|c| matches!(c, '.' | '!' | '?' | ';' | ':' | '。' | '！' | '？'));
    let closes_paragraph = text[end..]
        .trim_start_matches([' ', '\t'])
        .starts_with("\n\n");
    Word {
        start,
        end,
        ends_sentence: closes_sentence || closes_paragraph,
    }
}

/// Returns whether a character belongs to a script written without spaces.
fn is_cjk(character: char) -> bool {
    matches!(character,
        '\u{3040}'..='\u{30ff}'   // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{f900}'..='\u{faff}' // CJK compatibility ideographs
        | '\u{ac00}'..='\u{d7af}' // Hangul syllables
        | '\u{3000}'..='\u{303f}') // CJK punctuation
        && !character.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str) -> Page {
        Page {
            number,
            text: text.to_owned(),
        }
    }

    /// Builds `count` numbered words, a sentence ending every `sentence`.
    fn numbered_words(count: usize, sentence: usize) -> String {
        (0..count)
            .map(|index| {
                if (index + 1) % sentence == 0 {
                    format!("w{index}.")
                } else {
                    format!("w{index}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn assert_invariants(pages: &[Page], chunks: &[Chunk], target: usize) {
        for (ordinal, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.ordinal as usize, ordinal);
            let page = pages.iter().find(|page| page.number == chunk.page).unwrap();
            assert_eq!(&page.text[chunk.start..chunk.end], chunk.text);
            assert!(!chunk.text.trim().is_empty());
            assert_eq!(
                chunk.text.trim(),
                chunk.text,
                "chunks start and end on words"
            );
            assert!(
                chunk.text.split_whitespace().count() <= target,
                "{}",
                chunk.text
            );
        }
    }

    #[test]
    fn short_page_is_one_chunk_and_empty_pages_are_skipped() {
        let pages = [page(1, "  \n "), page(2, "  Hello world.\n"), page(3, "")];
        let chunks = chunk(&pages, 120, 20);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].page, 2);
        assert_eq!(chunks[0].text, "Hello world.");
        assert_eq!((chunks[0].start, chunks[0].end), (2, 14));
    }

    #[test]
    fn chunks_keep_their_page_and_slice_its_text() {
        let pages = [
            page(1, &numbered_words(500, 9)),
            page(2, "A short second page."),
            page(3, &numbered_words(260, 1000)),
        ];
        let chunks = chunk(&pages, 120, 20);
        assert_invariants(&pages, &chunks, 120);
        let pages_seen: Vec<u32> = chunks.iter().map(|chunk| chunk.page).collect();
        assert!(pages_seen.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(chunks.iter().filter(|chunk| chunk.page == 2).count(), 1);
    }

    #[test]
    fn consecutive_chunks_overlap_and_cover_every_word() {
        let text = numbered_words(1_000, 1_000_000);
        let pages = [page(1, &text)];
        let chunks = chunk(&pages, 120, 20);
        assert_invariants(&pages, &chunks, 120);
        assert_eq!(chunks.first().unwrap().start, 0);
        assert_eq!(chunks.last().unwrap().end, text.len());
        for pair in chunks.windows(2) {
            assert!(pair[1].start < pair[0].end, "no gap between chunks");
            let shared = text[pair[1].start..pair[0].end].split_whitespace().count();
            assert!(shared >= 20, "overlap of {shared} words");
        }
    }

    #[test]
    fn chunks_end_at_sentence_ends_when_they_can() {
        let text = numbered_words(400, 10);
        let pages = [page(1, &text)];
        let chunks = chunk(&pages, 120, 20);
        assert_invariants(&pages, &chunks, 120);
        for chunk in &chunks[..chunks.len() - 1] {
            assert!(chunk.text.ends_with('.'), "{}", chunk.text);
        }
    }

    #[test]
    fn words_are_spread_evenly_without_a_short_tail() {
        let text = numbered_words(130, 1_000_000);
        let chunks = chunk(&[page(1, &text)], 120, 20);
        let sizes: Vec<usize> = chunks
            .iter()
            .map(|chunk| chunk.text.split_whitespace().count())
            .collect();
        assert_eq!(sizes, [75, 75]);
    }

    #[test]
    fn cjk_text_without_spaces_is_split_per_character() {
        let text = "雨ニモマケズ風ニモマケズ".repeat(30);
        let pages = [page(1, &text)];
        let chunks = chunk(&pages, 100, 10);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert_eq!(&text[chunk.start..chunk.end], chunk.text);
            assert!(chunk.text.chars().count() <= 100);
        }
    }

    #[test]
    fn odd_arguments_still_make_progress() {
        let text = numbered_words(50, 3);
        let pages = [page(1, &text)];
        for (target, overlap) in [(0, 0), (1, 5), (2, 1), (7, 100)] {
            let chunks = chunk(&pages, target, overlap);
            assert!(!chunks.is_empty());
            assert_eq!(chunks.last().unwrap().end, text.len());
        }
    }
}
