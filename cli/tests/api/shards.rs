//! Search sharded by user, in one process: three search shards on one
//! database, each user's chunks (uploaded through the gateway, indexed by
//! the documents worker) land on their owner's indexes only, and every
//! user's hits are those of one unsharded search service built from the
//! same rows; going to four shards moves only the users the hash gives the
//! new shard, and every user's hits stay the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pai_common::shards::owner;
use uuid::Uuid;

use crate::helpers::{Options, Response, TestApp, spawn_app_with};

/// Small corpus documents that index quickly; user i uploads the i-th
/// (modulo), so several users hold the same text.
const DOCUMENTS: [&str; 4] = [
    "fin_aws_invoice_2014.pdf",
    "gen_crazy_ones_pdfa.pdf",
    "fin_flipkart_invoice_2015.pdf",
    "gen_cupertino_school_board_agenda_2016.pdf",
];
const QUERIES: [&str; 3] = [
    "invoice total amount",
    "the round pegs in the square holes",
    "school board meeting agenda",
];
/// Registrations at most while looking for users on every shard.
const MAX_USERS: usize = 40;

struct User {
    id: Uuid,
    token: String,
}

/// Each user's hits for each query: (source id, page, text), best first.
type Hits = BTreeMap<(Uuid, &'static str), Vec<(String, u64, String)>>;

fn hit_keys(r: &Response) -> Vec<(String, u64, String)> {
    assert!(r.status.is_success(), "search: {}", r.body);
    r.body["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| {
            (
                h["source"]["id"].as_str().expect("source id").to_owned(),
                h["source"]["page"].as_u64().expect("page"),
                h["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn all_hits(app: &TestApp, users: &[User]) -> Hits {
    let mut hits = Hits::new();
    for user in users {
        for query in QUERIES {
            let r = app.search(&user.token, query, "&k=5").await;
            hits.insert((user.id, query), hit_keys(&r));
        }
    }
    hits
}

/// The shards (of `count`, under `base`) holding an index of `user`.
fn holders(base: &Path, count: u32, user: Uuid) -> Vec<u32> {
    (0..count)
        .filter(|shard| {
            let dir = base.join(format!("shard-{shard}"));
            let vectors = dir.join("vectors").join(format!("{user}.usearch"));
            let text = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("text-"))
                .any(|e| e.path().join(user.to_string()).exists());
            vectors.exists() || text
        })
        .collect()
}

async fn restart_with(app: &mut TestApp, shards: u32, vector_db: &Path) {
    app.env = app
        .env
        .clone()
        .with("SEARCH_SHARDS", shards.to_string())
        .with("VECTOR_DB_PATH", vector_db.to_string_lossy().into_owned());
    app.restart(false).await;
}

#[tokio::test]
async fn users_live_on_their_shard_and_find_what_one_unsharded_search_finds() {
    let mut app = spawn_app_with(Options::default().var("SEARCH_SHARDS", "3")).await;
    let sharded: PathBuf = app.data_dir.join("vector_db");

    // Users until every shard of three has one and one moves to a fourth.
    let mut users = Vec::new();
    let covered = |users: &[User]| {
        (0..3).all(|shard| users.iter().any(|u| owner(u.id, 3) == shard))
            && users.iter().any(|u| owner(u.id, 4) == 3)
    };
    while !covered(&users) {
        assert!(users.len() < MAX_USERS, "no spread over the shards");
        let body = app.register(&format!("shard{}", users.len())).await;
        users.push(User {
            id: Uuid::parse_str(body["user"]["id"].as_str().expect("user id")).expect("uuid"),
            token: body["access_token"].as_str().expect("token").to_owned(),
        });
    }
    let mut documents = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let doc = app
            .upload(&user.token, DOCUMENTS[i % DOCUMENTS.len()])
            .await;
        documents.push(doc["id"].as_str().expect("document id").to_owned());
    }
    for (user, id) in users.iter().zip(&documents) {
        let doc = app.wait_document(&user.token, id).await;
        assert_eq!(doc["status"], "indexed", "{doc}");
    }

    // Each user's indexes are on their owner only.
    for user in &users {
        assert_eq!(holders(&sharded, 3, user.id), [owner(user.id, 3)]);
    }
    let three = all_hits(&app, &users).await;
    for (i, user) in users.iter().enumerate() {
        let own = &documents[i];
        let found: Vec<_> = QUERIES
            .iter()
            .flat_map(|q| &three[&(user.id, *q)])
            .collect();
        assert!(!found.is_empty(), "user {i} finds nothing");
        // Their own document only.
        assert!(found.iter().all(|(source, _, _)| source == own), "user {i}");
    }

    // One unsharded search service, built from the same rows.
    let unsharded = app.data_dir.join("vector_db_unsharded");
    restart_with(&mut app, 1, &unsharded).await;
    assert_eq!(all_hits(&app, &users).await, three, "unsharded");

    // Four shards on the three shards' folders: each drops the users it no
    // longer owns and builds those it gained.
    restart_with(&mut app, 4, &sharded).await;
    let mut moved = 0;
    for user in &users {
        let (before, after) = (owner(user.id, 3), owner(user.id, 4));
        if before != after {
            assert_eq!(after, 3, "a user moved between the old shards");
            moved += 1;
        }
        assert_eq!(holders(&sharded, 4, user.id), [after]);
    }
    assert!(moved > 0);
    assert_eq!(all_hits(&app, &users).await, three, "four shards");

    app.finish().await;
}
