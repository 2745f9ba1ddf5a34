//! A property test of isolation: random users own random (and often the same)
//! documents; random queries, modes, filters, questions and id probes by any
//! of them never reach another user's document, file, chunk or query.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// Small corpus documents that index quickly; users draw from these.
const DOCUMENTS: [&str; 6] = [
    "fin_aws_invoice_2014.pdf",
    "fin_bol_factuur_2015.pdf",
    "fin_flipkart_invoice_2015.pdf",
    "gen_crazy_ones_pdfa.pdf",
    "gen_scotus_transcript_p1.pdf",
    "gen_cupertino_school_board_agenda_2016.pdf",
];
const USERS: usize = 4;
const MODES: [&str; 3] = ["bm25", "vector", "hybrid"];
const CATEGORIES: [&str; 4] = ["", "financial", "generic", "long_form"];

struct User {
    token: String,
    /// Document ids this user owns.
    owns: HashSet<String>,
}

struct World {
    users: Vec<User>,
    /// Every uploaded copy: (owner index, document id).
    copies: Vec<(usize, String)>,
    /// The words of each indexed corpus file, taken from `search.chunks`.
    words: Vec<Vec<String>>,
    /// Questions asked so far: (asker index, query id).
    asked: std::sync::Mutex<Vec<(usize, String)>>,
}

/// One random probe: a user searches words of some document and asks for a
/// copy that may be someone else's.
#[derive(Debug, Clone)]
struct Probe {
    user: usize,
    source: usize,
    start: usize,
    len: usize,
    mode: &'static str,
    category: &'static str,
    k: u32,
    copy: usize,
}

fn probes(sources: usize, copies: usize) -> impl Strategy<Value = Probe> {
    (
        0..USERS,
        0..sources,
        any::<usize>(),
        1usize..=5,
        proptest::sample::select(&MODES[..]),
        proptest::sample::select(&CATEGORIES[..]),
        1u32..=20,
        0..copies,
    )
        .prop_map(
            |(user, source, start, len, mode, category, k, copy)| Probe {
                user,
                source,
                start,
                len,
                mode,
                category,
                k,
                copy,
            },
        )
}

#[test]
fn random_users_documents_and_queries_never_leak() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    // Who owns what is drawn by the same runner, so one seed is the whole case.
    let assignment = proptest::collection::vec(subsequence(DOCUMENTS.to_vec(), 1..=3), USERS)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    eprintln!("owners: {assignment:?}");

    let app = runtime.block_on(spawn_app());
    let world = runtime.block_on(build_world(&app, &assignment));
    let result = runner.run(&probes(world.words.len(), world.copies.len()), |probe| {
        runtime.block_on(check(&app, &world, &probe))
    });
    runtime.block_on(app.finish());
    if let Err(failure) = result {
        panic!("{failure}\nowners: {assignment:?}");
    }
}

async fn build_world(app: &TestApp, assignment: &[Vec<&str>]) -> World {
    let mut users = Vec::new();
    let mut copies = Vec::new();
    for (index, files) in assignment.iter().enumerate() {
        let user = app.register(&format!("prop{index}")).await;
        let token = user["access_token"].as_str().unwrap().to_owned();
        let mut owns = HashSet::new();
        for file in files {
            let doc = app.upload(&token, file).await;
            let id = doc["id"].as_str().unwrap().to_owned();
            owns.insert(id.clone());
            copies.push((index, id));
        }
        users.push(User { token, owns });
    }
    let mut by_file: BTreeMap<&str, String> = BTreeMap::new();
    for (index, files) in assignment.iter().enumerate() {
        for (file, id) in files.iter().zip(
            copies
                .iter()
                .filter(|(owner, _)| *owner == index)
                .map(|(_, id)| id),
        ) {
            let doc = app.wait_document(&users[index].token, id).await;
            assert_eq!(doc["status"], "indexed", "{file}: {doc}");
            by_file.entry(file).or_insert_with(|| id.clone());
        }
    }
    owners_find_their_own(app, &users, &copies).await;
    let mut words = Vec::new();
    for id in by_file.values() {
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT text FROM search.chunks WHERE source_id = $1 ORDER BY ordinal",
        )
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_all(&app.db)
        .await
        .unwrap();
        let list: Vec<String> = texts
            .iter()
            .flat_map(|t| t.split_whitespace())
            .map(str::to_owned)
            .collect();
        assert!(!list.is_empty(), "document {id} has no chunk text");
        words.push(list);
    }
    World {
        users,
        copies,
        words,
        asked: std::sync::Mutex::default(),
    }
}

/// Every owner finds each of their copies by a passage of it, in every
/// mode: an isolation that held because search found nothing would fail here.
async fn owners_find_their_own(app: &TestApp, users: &[User], copies: &[(usize, String)]) {
    for (owner, id) in copies {
        let first: String = sqlx::query_scalar(
            "SELECT text FROM search.chunks WHERE source_id = $1 ORDER BY ordinal LIMIT 1",
        )
        .bind(Uuid::parse_str(id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
        // A passage of the chunk, well under the query length limit.
        let mut passage = String::new();
        for word in first.split_whitespace() {
            if passage.len() + word.len() >= 400 {
                break;
            }
            passage.push_str(word);
            passage.push(' ');
        }
        for mode in MODES {
            let r = app
                .search(
                    &users[*owner].token,
                    &passage,
                    &format!("&mode={mode}&k=20"),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let found: Vec<&str> = r.body["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|hit| hit["source"]["id"].as_str())
                .collect();
            assert!(
                found.contains(&id.as_str()),
                "user {owner} searching a passage of their document {id} ({mode}) got {found:?}"
            );
        }
    }
}

async fn check(app: &TestApp, world: &World, probe: &Probe) -> Result<(), TestCaseError> {
    let user = &world.users[probe.user];
    let words = &world.words[probe.source];
    let start = probe.start % words.len();
    let query: Vec<&str> = words[start..(start + probe.len).min(words.len())]
        .iter()
        .map(String::as_str)
        .collect();
    let query = query.join(" ");
    let mut extra = format!("&mode={}&k={}", probe.mode, probe.k);
    if !probe.category.is_empty() {
        extra.push_str(&format!("&category={}&source=document", probe.category));
    }
    let r = app.search(&user.token, &query, &extra).await;
    prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for hit in r.body["hits"].as_array().into_iter().flatten() {
        let id = hit["source"]["id"].as_str().unwrap_or_default();
        prop_assert!(
            user.owns.contains(id),
            "user {} searching {query:?} ({extra}) got another's chunk: {hit}",
            probe.user
        );
    }

    // Some probes ask the words as a question (a short answer: what is
    // checked is where its sources come from), then probe someone's query.
    if probe.k <= 3 {
        let r = app
            .post(
                "/api/queries",
                Some(&user.token),
                serde_json::json!({"query": query, "max_tokens": 2, "k": probe.k}),
            )
            .await;
        prop_assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for source in r.body["sources"].as_array().into_iter().flatten() {
            let id = source["source_id"].as_str().unwrap_or_default();
            prop_assert!(
                user.owns.contains(id),
                "user {} asking {query:?} got another's source: {source}",
                probe.user
            );
        }
        let id = r.body["id"].as_str().unwrap_or_default().to_owned();
        let (asker, id) = {
            let mut asked = world.asked.lock().unwrap();
            asked.push((probe.user, id));
            asked[probe.copy % asked.len()].clone()
        };
        let query = app.get(&format!("/api/queries/{id}"), &user.token).await;
        if asker == probe.user {
            prop_assert_eq!(query.status, StatusCode::OK);
        } else {
            prop_assert_eq!(query.status, StatusCode::NOT_FOUND, "{}", query.body);
        }
        let listed = app.get("/api/queries?limit=100", &user.token).await;
        let mine: HashSet<String> = world
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(asker, _)| *asker == probe.user)
            .map(|(_, id)| id.clone())
            .collect();
        let ids: HashSet<String> = listed.body["queries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q["id"].as_str().map(str::to_owned))
            .collect();
        prop_assert_eq!(ids, mine);
    }

    let (owner, id) = &world.copies[probe.copy];
    let document = app.get(&format!("/api/documents/{id}"), &user.token).await;
    let file = app
        .get(&format!("/api/documents/{id}/file"), &user.token)
        .await;
    if *owner == probe.user {
        prop_assert_eq!(document.status, StatusCode::OK);
        prop_assert_eq!(&document.body["id"], &Value::from(id.as_str()));
        prop_assert_eq!(file.status, StatusCode::OK);
    } else {
        prop_assert_eq!(document.status, StatusCode::NOT_FOUND, "{}", document.body);
        prop_assert_eq!(file.status, StatusCode::NOT_FOUND);
    }

    let listed = app.get("/api/documents?limit=100", &user.token).await;
    let ids: HashSet<String> = listed.body["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();
    prop_assert_eq!(&ids, &user.owns);
    Ok(())
}
