//! Search keeps at most `SEARCH_OPEN_USERS_MAX` users' indexes open: 2,000
//! users behind a cap of 50 each find their own chunk after a rebuild from
//! `search.chunks` and after a restart that opens no index; writes to
//! closed users' indexes land; and the files and memory maps the process
//! holds in the index folder stay bounded throughout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pai_common::config::JwtSettings;
use pai_common::identity::{JwtKeys, UserContext, with_bearer};
use pai_proto::v1::search_internal_client::SearchInternalClient;
use pai_proto::v1::{ChunkInput, DeleteSourceRequest, IndexChunksRequest};
use pai_search::repo::{self, NewChunk, Source};
use uuid::Uuid;

use crate::helpers::{Options, TestApp, model_path, spawn_app_with};

const USERS: usize = 2_000;
const OPEN_MAX: usize = 50;
/// Memory maps one open user's BM25 index holds: its segment's files (6
/// for a one-chunk segment); a vector index is read whole, mapping none.
const MAPS_A_USER: usize = 8;

fn all_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Samples [`held_under`] every 5 ms on a thread of its own until dropped,
/// keeping the most of each.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, usize)>>,
}

impl Sampler {
    fn start(dir: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut most = (0, 0);
            while !stopping.load(Ordering::Relaxed) {
                let held = pai_search::held_under(&dir);
                most = (most.0.max(held.0), most.1.max(held.1));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            most
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn most(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn text(n: usize) -> String {
    format!("ledger{n} shared invoice")
}

/// Each user `n` of `which` searches their own word and finds exactly
/// `expected(n)`: their one chunk's text (from their source), or nothing.
/// Returns each search's time, sorted.
async fn search_each(
    app: &TestApp,
    keys: &JwtKeys,
    users: &[(Uuid, Uuid)],
    which: std::ops::Range<usize>,
    expected: impl Fn(usize) -> Option<String>,
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(which.len());
    for n in which {
        let (user_id, source_id) = &users[n];
        let token = keys.issue_access(&UserContext {
            user_id: *user_id,
            session_id: Uuid::new_v4(),
            is_admin: false,
        });
        let started = Instant::now();
        let found = app
            .search(&token, &format!("ledger{n}"), "&mode=hybrid&k=5")
            .await;
        took.push(started.elapsed());
        assert_eq!(found.status, 200, "{:?}", found.body);
        let hits: Vec<(String, String)> = found.body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let source = h["source"]["id"].as_str().unwrap().to_owned();
                (source, h["text"].as_str().unwrap().to_owned())
            })
            .collect();
        let wanted: Vec<(String, String)> = expected(n)
            .map(|text| (source_id.to_string(), text))
            .into_iter()
            .collect();
        assert_eq!(hits, wanted, "user {n}");
    }
    took.sort();
    took
}

fn p50_ms(sorted: &[Duration]) -> f64 {
    sorted[sorted.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::test]
async fn two_thousand_users_behind_a_cap_of_fifty_open_indexes() {
    let started = Instant::now();
    let mut app =
        spawn_app_with(Options::default().var("SEARCH_OPEN_USERS_MAX", OPEN_MAX.to_string())).await;
    let keys = JwtKeys::new(&JwtSettings::from_env(&app.env).unwrap());
    let users: Vec<(Uuid, Uuid)> = (0..USERS)
        .map(|_| (Uuid::new_v4(), Uuid::new_v4()))
        .collect();
    let fds_before = all_fds();
    let held_before = pai_search::held_under(&app.data_dir);

    // One tiny chunk each, embedded by the model and stored straight into
    // `search.chunks`; the restart rebuilds the indexes from it.
    let embedder = pai_inference::Embedder::load(Path::new(&model_path())).unwrap();
    let texts: Vec<String> = (0..USERS).map(text).collect();
    let mut embeddings = Vec::with_capacity(USERS);
    for batch in texts.chunks(32) {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        embeddings.extend(embedder.embed(&batch).unwrap());
    }
    drop(embedder);
    let mut tx = app.db.begin().await.unwrap();
    for (n, ((user_id, source_id), embedding)) in users.iter().zip(embeddings).enumerate() {
        let source = Source {
            user_id: *user_id,
            kind: "document".into(),
            id: *source_id,
            title: format!("notes {n}.pdf"),
            category: "generic".into(),
        };
        let chunk = NewChunk {
            ordinal: 0,
            page: 1,
            start: 0,
            end: texts[n].len() as i32,
            text: texts[n].clone(),
            embedding,
        };
        repo::replace_source(&mut tx, &source, &[chunk])
            .await
            .unwrap();
    }
    repo::bump_generation(&mut tx, pai_common::shards::Shard::ONLY)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = started.elapsed();

    let sampler = Sampler::start(app.data_dir.clone());
    app.restart(false).await;
    let rebuilt = started.elapsed();
    search_each(&app, &keys, &users, 0..USERS, |n| Some(text(n))).await;
    let searched = started.elapsed();
    let most_rebuilding_and_searching = sampler.most();

    // Writes to users whose indexes are closed by now: user 0's chunk is
    // replaced, user 1's source deleted.
    let channel = pai_common::grpc::channel(&format!("http://{}", app.search_addr)).unwrap();
    let mut internal = SearchInternalClient::new(channel);
    let service = keys.issue_service("documents");
    let replaced = "ledger0 rewritten receipt";
    internal
        .index_chunks(with_bearer(
            tonic::Request::new(IndexChunksRequest {
                user_id: users[0].0.to_string(),
                source_kind: "document".into(),
                source_id: users[0].1.to_string(),
                title: "notes 0.pdf".into(),
                category: "generic".into(),
                chunks: vec![ChunkInput {
                    ordinal: 0,
                    page: 1,
                    start: 0,
                    end: replaced.len() as u32,
                    text: replaced.into(),
                }],
            }),
            &service,
        ))
        .await
        .unwrap();
    internal
        .delete_source(with_bearer(
            tonic::Request::new(DeleteSourceRequest {
                user_id: users[1].0.to_string(),
                source_kind: "document".into(),
                source_id: users[1].1.to_string(),
                more_source_ids: Vec::new(),
            }),
            &service,
        ))
        .await
        .unwrap();
    let expected = |n: usize| match n {
        0 => Some(replaced.to_owned()),
        1 => None,
        _ => Some(text(n)),
    };

    // A restart with the indexes caught up opens none of them: each is
    // opened by its user's first search.
    app.restart(false).await;
    let held_restarted = pai_search::held_under(&app.data_dir);
    assert_eq!(held_restarted, (0, 0), "a user's index opened at start");
    let sampler = Sampler::start(app.data_dir.clone());
    let cold = search_each(&app, &keys, &users, 0..USERS, expected).await;
    let most_after_restart = sampler.most();
    // The last users searched are still open.
    let hot = search_each(&app, &keys, &users, USERS - OPEN_MAX / 2..USERS, expected).await;
    let fds_after = all_fds();
    println!(
        "{USERS} users, cap {OPEN_MAX}: (files, maps) held in the index folder {held_before:?} \
         before, at most {most_rebuilding_and_searching:?} while rebuilding and searching each \
         user, {held_restarted:?} after a restart, at most {most_after_restart:?} while \
         searching each again; the process's fds {fds_before} before, {fds_after} after \
         (other tests may share the process); stored {:.0} s, rebuilt {:.0} s, searched {:.0} s, \
         done {:.0} s; search p50 at 1 client through the gateway, a user's first search \
         after the restart (closed indexes) {:.2} ms, a search of an open user's {:.2} ms",
        stored.as_secs_f64(),
        (rebuilt - stored).as_secs_f64(),
        (searched - rebuilt).as_secs_f64(),
        started.elapsed().as_secs_f64(),
        p50_ms(&cold),
        p50_ms(&hot),
    );
    for (files, maps) in [most_rebuilding_and_searching, most_after_restart] {
        // A rebuild commits after 8 users' writers are open; each holds
        // its new segment's few files meanwhile. Searches hold none.
        assert!(files <= 96, "{files} files held");
        assert!(
            maps <= (OPEN_MAX + 8) * MAPS_A_USER,
            "{maps} maps held for {OPEN_MAX} open users"
        );
    }

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for name in [
        "pai_search_index_opens_total",
        "pai_search_index_evictions_total",
        "pai_search_open_users",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    app.finish().await;
}
