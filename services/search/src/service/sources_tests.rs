//! A search restricted to some sources (`Filters::sources`, the
//! `source_ids` of a `SearchRequest`) finds only chunks of those sources
//! of the caller's, in every mode, and finds their chunks even where more
//! of the user's other chunks than a search takes as candidates are nearer
//! the query (by the real model's embeddings).

use std::collections::HashSet;

use uuid::Uuid;

use super::testing::{TestCore, document};
use super::{Hit, Mode};
use crate::text_index::Filters;

/// Who sent the user invoices: a ledger document of ten a year each.
const SUPPLIERS: [&str; 11] = [
    "Harbour Plumbing",
    "Northern Gas",
    "Bright Spark Electrics",
    "Green Lawn Care",
    "City Water",
    "Acme Roofing",
    "Swift Couriers",
    "Oak Joinery",
    "Blue Sky Broadband",
    "Metro Cleaning",
    "Hillside Dairy",
];
const MONTHS: [&str; 10] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
];
const STRANGERS: &str = "The stranger's invoice for the garden fence.";

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
    // "invoice" in every one of them. `a`'s chunks are about other things
    // and name an invoice in passing (all-MiniLM-L6-v2: 0.25-0.3 of the
    // query); the 550 chunks of the user's invoice ledgers are about
    // invoices and short (0.46-0.64, and a BM25 score above `a`'s): more
    // of them are nearer the query than the 500 candidates a search of 50
    // takes when it is restricted.
    let a_chunks = [
        "Clause 12 of the lease: the tenant keeps the garden tidy, repairs broken \
         windows at their own cost, and pays the landlord's invoice for the chimney \
         sweep each autumn.",
        "Minutes of the residents' meeting: the new bicycle shed, parking on the \
         verge, the noise from the pub on Fridays, and who will pay the invoice for \
         the hedge.",
    ];
    let mut indexed: Vec<(Uuid, Uuid, &str, Vec<String>)> = vec![
        (user, a, "document", a_chunks.map(str::to_owned).to_vec()),
        (
            user,
            b,
            "document",
            vec!["The plumber's invoice for fixing the kitchen sink.".into()],
        ),
        (
            user,
            c,
            "document",
            vec!["Invoice for the roof repairs after the storm.".into()],
        ),
        (
            user,
            mail,
            "email",
            vec!["Your invoice is attached to this email.".into()],
        ),
        // The stranger's source has `a`'s id.
        (stranger, a, "document", vec![STRANGERS.into()]),
    ];
    let mut ledgers = Vec::new();
    for (n, supplier) in SUPPLIERS.iter().enumerate() {
        for year in 2020..2025 {
            let ledger = MONTHS
                .iter()
                .enumerate()
                .map(|(m, month)| {
                    let number = (year - 2020) * 1000 + n * 10 + m + 100;
                    format!("Invoice {number} from {supplier} for {month} {year}, paid.")
                })
                .collect();
            let id = Uuid::new_v4();
            ledgers.push(id);
            indexed.push((user, id, "document", ledger));
        }
    }
    for (owner, id, kind, texts) in &indexed {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (source, chunks) = document(*owner, *id, kind, &texts);
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
    // The premise, by the model: every ledger chunk is nearer the query
    // than `a`'s chunks are (a vector hit's score is its similarity).
    let a_nearest = search(Mode::Vector, vec![a], None)
        .await
        .iter()
        .map(|h| h.score)
        .fold(f32::NEG_INFINITY, f32::max);
    for ledger in &ledgers {
        let hits = search(Mode::Vector, vec![*ledger], None).await;
        assert_eq!(hits.len(), MONTHS.len());
        for hit in &hits {
            assert!(
                hit.score > a_nearest,
                "{:?} ({}) is not nearer than a's {a_nearest}",
                hit.chunk.text,
                hit.score
            );
        }
    }
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
    assert_eq!(theirs[0].chunk.text, STRANGERS);
    test.stop().await;
}

/// Many small sources indexed as one change (`index_sources`, how mail is
/// indexed) are each found, by their owner only, in every mode; indexing
/// the batch again replaces each source's chunks, leaving none behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_indexed_together_are_each_found_and_replaced() {
    let test = TestCore::start(None).await;
    let core = &test.core;
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    // (owner, source, supplier): every fourth source is the other user's.
    let batch: Vec<(Uuid, Uuid, &str)> = SUPPLIERS
        .iter()
        .enumerate()
        .map(|(n, supplier)| {
            let owner = if n % 4 == 3 { other } else { user };
            (owner, Uuid::new_v4(), *supplier)
        })
        .collect();
    let version = |first: bool| -> Vec<_> {
        batch
            .iter()
            .map(|(owner, id, supplier)| {
                let invoice = format!("Invoice from {supplier}, paid in full.");
                let thanks = format!("{supplier} thanks you for your custom.");
                let texts: Vec<&str> = if first {
                    vec![&invoice, &thanks]
                } else {
                    vec![&thanks]
                };
                document(*owner, *id, "email", &texts)
            })
            .collect()
    };
    let indexed = core.index_sources(version(true)).await.expect("index");
    assert_eq!(indexed, 2 * batch.len());

    let found = |searcher: Uuid, supplier: &'static str, id: Uuid, mode: Mode| async move {
        let filters = Filters {
            sources: vec![id],
            ..Filters::default()
        };
        core.search(searcher, supplier, 10, mode, filters)
            .await
            .expect("search")
            .0
    };
    for (owner, id, supplier) in &batch {
        let stranger = if *owner == user { other } else { user };
        for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
            let hits = found(*owner, supplier, *id, mode).await;
            assert_eq!(hits.len(), 2, "{supplier}, {mode:?}");
            assert!(hits.iter().all(|h| h.chunk.text.contains(supplier)));
            assert!(found(stranger, supplier, *id, mode).await.is_empty());
        }
    }

    let indexed = core.index_sources(version(false)).await.expect("re-index");
    assert_eq!(indexed, batch.len());
    for (owner, id, supplier) in &batch {
        for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
            let hits = found(*owner, supplier, *id, mode).await;
            assert_eq!(hits.len(), 1, "{supplier}, {mode:?}");
            assert!(hits[0].chunk.text.ends_with("thanks you for your custom."));
        }
    }
    test.stop().await;
}
