//! A search restricted to some sources (`Filters::sources`, the
//! `source_ids` of a `SearchRequest`) finds only chunks of those sources
//! of the caller's, in every mode, and finds their best chunks even where
//! the user's other chunks are all nearer the query.

use std::collections::HashSet;

use uuid::Uuid;

use super::testing::{TestCore, document};
use super::{Hit, Mode};
use crate::text_index::Filters;

fn sources_of(hits: &[Hit]) -> HashSet<Uuid> {
    hits.iter().map(|h| h.chunk.source_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_restricted_to_sources_finds_only_theirs() {
    let test = TestCore::start(None).await;
    let core = &test.core;
    let (user, stranger) = (Uuid::new_v4(), Uuid::new_v4());
    let (a, b, c, mail) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    // "invoice" in every one of them; `a`'s chunks say much else besides,
    // so thirty other documents are nearer the query than any of its.
    let long = "invoice appendix with clauses on liability warranty arbitration \
                jurisdiction severability notices assignment and force majeure";
    let mut indexed = vec![
        (user, a, "document", vec![long, long]),
        (user, b, "document", vec!["invoice from the plumber"]),
        (user, c, "document", vec!["invoice for the roof"]),
        (user, mail, "email", vec!["your invoice is attached"]),
        // The stranger's source has `a`'s id.
        (stranger, a, "document", vec!["invoice of the stranger"]),
    ];
    for _ in 0..30 {
        indexed.push((
            user,
            Uuid::new_v4(),
            "document",
            vec!["invoice invoice paid"; 10],
        ));
    }
    for (owner, id, kind, texts) in &indexed {
        let (source, chunks) = document(*owner, *id, kind, texts);
        core.index_chunks(source, chunks).await.expect("index");
    }

    let search = |mode, sources: Vec<Uuid>, kind: Option<&str>| {
        let filters = Filters {
            kind: kind.map(str::to_owned),
            sources,
            ..Filters::default()
        };
        async move {
            core.search(user, "invoice", 50, mode, filters)
                .await
                .expect("search")
                .0
        }
    };
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        // Unrestricted, `a`'s chunks are not among the best fifty.
        let all = search(mode, Vec::new(), None).await;
        assert!(!sources_of(&all).contains(&a), "{mode:?}");

        let hits = search(mode, vec![a, c], None).await;
        assert_eq!(sources_of(&hits), HashSet::from([a, c]), "{mode:?}");
        assert!(hits.iter().all(|h| h.chunk.user_id == user), "{mode:?}");
        assert!(
            hits.iter().all(|h| !h.chunk.text.contains("stranger")),
            "{mode:?}"
        );
        assert_eq!(hits.len(), 3, "{mode:?}: both of a's chunks and c's");

        let hits = search(mode, vec![a, mail], Some("email")).await;
        assert_eq!(sources_of(&hits), HashSet::from([mail]), "{mode:?}");
        assert!(search(mode, vec![a], Some("email")).await.is_empty());
        assert!(search(mode, vec![Uuid::new_v4()], None).await.is_empty());
    }
    // The stranger's search restricted to the id they share finds theirs.
    let (theirs, _) = core
        .search(
            stranger,
            "invoice",
            10,
            Mode::Hybrid,
            Filters {
                sources: vec![a, b],
                ..Filters::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].chunk.text, "invoice of the stranger");
    test.stop().await;
}
