//! A document being re-indexed stays findable at every moment of the
//! change. `index_chunks` is stopped at each [`Moment`] (the rows
//! committed in PostgreSQL, each index before and after its part), with
//! its two indexes changed in both orders, and searched there: every mode,
//! unrestricted and restricted to the document, finds it, in its old
//! version or its new one.

use uuid::Uuid;

use super::testing::{Pauses, TestCore, document};
use super::{Mode, Moment, SearchCore};
use crate::text_index::Filters;

/// The version indexed first: "lighthouse" only in the chunks the next
/// version drops (ordinals 3 to 5).
const OLD: [&str; 6] = [
    "quarterly budget figures for the harbour board",
    "minutes of the harbour board meeting in march",
    "tide tables and mooring fees for visiting boats",
    "the lighthouse lamp was serviced in april",
    "lighthouse keeper rota for the summer season",
    "repairs to the lighthouse gallery railing",
];
/// The next version: three chunks (their ids kept, their text new), each
/// with "lighthouse".
const NEW: [&str; 3] = [
    "the lighthouse now runs on solar panels",
    "lighthouse visits resume for school groups",
    "a cottage for the lighthouse keeper was built",
];
const QUERY: &str = "lighthouse";

/// Searches `user`'s chunks for [`QUERY`] in every mode, unrestricted and
/// restricted to `doc`: each finds `doc`, every hit of it is a chunk of
/// one of its versions, and a restricted search finds nothing else.
async fn assert_findable(core: &SearchCore, user: Uuid, doc: Uuid, when: &str) {
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        for sources in [Vec::new(), vec![doc]] {
            let restricted = !sources.is_empty();
            let filters = Filters {
                sources,
                ..Filters::default()
            };
            let (hits, _) = core
                .search(user, QUERY, 10, mode, filters)
                .await
                .expect("search");
            let of_doc: Vec<_> = hits.iter().filter(|h| h.chunk.source_id == doc).collect();
            assert!(
                !of_doc.is_empty(),
                "{when}, {mode:?}, restricted {restricted}: the document is not found: {hits:#?}"
            );
            for hit in &of_doc {
                let ordinal = usize::try_from(hit.chunk.ordinal).expect("an ordinal");
                let text = hit.chunk.text.as_str();
                assert!(
                    OLD.get(ordinal) == Some(&text) || NEW.get(ordinal) == Some(&text),
                    "{when}, {mode:?}: chunk {ordinal} is of neither version: {text:?}"
                );
                assert_eq!(hit.chunk.user_id, user);
            }
            if restricted {
                assert_eq!(of_doc.len(), hits.len(), "{when}, {mode:?}: {hits:#?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_being_reindexed_is_found_at_every_moment() {
    let (pause, mut pauses) = Pauses::new();
    let test = TestCore::start(Some(pause)).await;
    let core = &test.core;
    let (user, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let doc = Uuid::new_v4();
    // Beside it: another document of the user's that a search restricted
    // to `doc` must leave out, and a stranger's source of the same id.
    for (owner, id, texts) in [
        (user, doc, &OLD[..]),
        (
            user,
            Uuid::new_v4(),
            &["the lighthouse on the pier was painted white"][..],
        ),
        (stranger, doc, &["a lighthouse of the stranger's"][..]),
    ] {
        let (source, chunks) = document(owner, id, "document", texts);
        core.index_chunks(source, chunks).await.expect("index");
    }
    assert_findable(core, user, doc, "before").await;

    pauses.hold(true);
    // Old to new (three chunks dropped, three kept with new text), the
    // vector index changing first; then back, the BM25 index first.
    for (version, vectors_first) in [(&NEW[..], true), (&OLD[..], false)] {
        let reindex = tokio::spawn({
            let core = std::sync::Arc::clone(core);
            let (source, chunks) = document(user, doc, "document", version);
            async move { core.index_chunks(source, chunks).await }
        });
        let stored = pauses.at(Moment::Stored).await;
        assert_findable(core, user, doc, "rows committed, indexes old").await;
        drop(stored);
        let sides = [
            (
                Moment::VectorsStarting,
                [Moment::VectorsPut, Moment::VectorsDone].as_slice(),
            ),
            (Moment::TextStarting, [Moment::TextCommitted].as_slice()),
        ];
        let order = if vectors_first { [0, 1] } else { [1, 0] };
        for side in order {
            let (starting, moments) = sides[side];
            // The other side stays stopped at its start meanwhile.
            drop(pauses.at(starting).await);
            for &moment in moments {
                let held = pauses.at(moment).await;
                let when = format!("{moment:?}, vectors first {vectors_first}");
                assert_findable(core, user, doc, &when).await;
                drop(held);
            }
        }
        let indexed = reindex.await.expect("the re-index task").expect("index");
        assert_eq!(indexed, version.len());
        assert_findable(core, user, doc, "after").await;
    }
    pauses.hold(false);
    test.stop().await;
}
