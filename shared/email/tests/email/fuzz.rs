//! No input panics: random bytes, and corpus messages cut and mutated.

use pai_email::{Limits, classify, parse, searchable_text};
use proptest::prelude::*;

fn exercise(raw: &[u8]) {
    if let Ok(email) = parse(raw, &Limits::default()) {
        let _ = classify(&email, &[]);
        let _ = searchable_text(&email);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        exercise(&raw);
    }

    #[test]
    fn random_header_shaped_text_never_panics(
        raw in "([A-Za-z-]{1,12}: [ -~]{0,40}\r\n){0,8}\r\n[ -~\r\n=?]{0,400}"
    ) {
        exercise(raw.as_bytes());
    }

    #[test]
    fn mutated_corpus_messages_never_panic(
        pick in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
    ) {
        let corpus = corpus();
        let mut raw = corpus[pick.index(corpus.len())].clone();
        for (at, byte) in flips {
            if !raw.is_empty() {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
        }
        let len = cut.index(raw.len() + 1);
        raw.truncate(len);
        exercise(&raw);
    }
}

fn corpus() -> &'static Vec<Vec<u8>> {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        crate::corpus::all()
            .into_iter()
            .map(|(_, raw)| raw)
            .collect()
    })
}
