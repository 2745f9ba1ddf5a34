//! What the tests of a whole [`SearchCore`] share: a PostgreSQL database
//! of their own (dropped afterwards), the real inference service with the
//! default model (all-MiniLM-L6-v2) served in this process, and [`Pauses`],
//! which stops a re-index at each [`Moment`] until the test lets it go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pai_common::config::Env;
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, ServiceCredential};
use pai_inference::InferenceSettings;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{ChunkText, Moment, Pause, SearchCore};
use crate::repo::Source;

const JWT_SECRET: &str = "search-core-tests-0123456789-abcdefghijklmnopqrstuvwxyz";
/// How long a test waits for a change to reach a moment before it fails
/// (a guard against a hang, not a pace: moments come in milliseconds).
const MOMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The default model's folder: `EMBEDDING_MODEL_PATH`, else
/// `$HOME/.cache/pai/models/all-minilm-l6-v2`.
fn model_path() -> String {
    std::env::var("EMBEDDING_MODEL_PATH")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/pai/models/all-minilm-l6-v2")
        })
}

pub(crate) fn admin_url() -> String {
    std::env::var("PAI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// A [`SearchCore`] over a database and an index folder of its own, its
/// embeddings from the inference service running in this process.
pub struct TestCore {
    pub core: Arc<SearchCore>,
    db_name: String,
    dir: PathBuf,
    /// Stops the inference service.
    shutdown: CancellationToken,
    /// The inference service; it panics if it fails.
    serving: JoinHandle<()>,
}

impl TestCore {
    /// Opens a core; `pause`, when given, runs at each moment of a re-index.
    pub async fn start(pause: Option<Pause>) -> Self {
        let db_name = format!("pai_test_search_{}", Uuid::new_v4().simple());
        let url = pai_common::db::with_database(&admin_url(), &db_name);
        pai_common::db::ensure_database(&url)
            .await
            .expect("create the test database");
        let pool = PgPool::connect(&url).await.expect("test pool");
        pai_common::db::migrate(&pool, crate::SCHEMA, &crate::MIGRATOR)
            .await
            .expect("migrate");
        // The inference service loads the model (about a second), then
        // registers itself in `local`; embeddings asked for before then
        // wait on its listener.
        let settings = InferenceSettings::from_env(&Env::from_pairs([
            ("EMBEDDING_MODEL_PATH", model_path()),
            ("JWT_SECRET_KEY", JWT_SECRET.to_owned()),
        ]))
        .expect("inference settings (the default model installed by `make models`)");
        let keys = Arc::new(JwtKeys::new(&settings.jwt));
        let (listener, addr) = pai_common::grpc::bind("127.0.0.1:0")
            .await
            .expect("bind the inference listener");
        let local = LocalServers::new(true);
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let serving =
                pai_inference::serve(settings, None, listener, shutdown.clone(), local.clone());
            async move {
                if let Err(err) = serving.await {
                    panic!("the inference service failed: {err:#}");
                }
            }
        });
        let embedder = InferenceInternalClient::with_interceptor(
            local.channel(&format!("http://{addr}")).expect("channel"),
            ServiceCredential::new(keys, "search"),
        );
        let dir = std::env::temp_dir().join(format!("pai-search-core-{}", Uuid::new_v4()));
        let mut core = SearchCore::open(
            pool,
            dir.clone(),
            16,
            embedder,
            pai_common::shards::Shard::ONLY,
        )
        .await
        .expect("open the core");
        core.pause = pause;
        Self {
            core: Arc::new(core),
            db_name,
            dir,
            shutdown,
            serving,
        }
    }

    /// Stops the inference service; drops the database and the index folder.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.serving.await.expect("the inference service");
        self.core.pool.close().await;
        drop(self.core);
        let _ = std::fs::remove_dir_all(&self.dir);
        let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db_name
        ))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    }
}

/// A document of `user` titled `title`, one chunk per text, ordinals from 0.
pub fn document(user_id: Uuid, id: Uuid, kind: &str, texts: &[&str]) -> (Source, Vec<ChunkText>) {
    let source = Source {
        user_id,
        kind: kind.to_owned(),
        id,
        title: "notes.pdf".into(),
        category: "generic".into(),
    };
    let chunks = texts
        .iter()
        .enumerate()
        .map(|(n, text)| ChunkText {
            ordinal: n as i32,
            page: 1,
            start: 0,
            end: text.len() as i32,
            text: (*text).to_owned(),
        })
        .collect();
    (source, chunks)
}

/// Stops each re-index at each [`Moment`] while holding is on, until the
/// test releases it.
pub struct Pauses {
    holding: Arc<AtomicBool>,
    arrivals: mpsc::UnboundedReceiver<(Moment, oneshot::Sender<()>)>,
    /// Moments reached that the test has not asked for yet, each held.
    reached: HashMap<Moment, oneshot::Sender<()>>,
}

/// A change stopped at a moment; it goes on when this is dropped.
pub struct Held(
    #[expect(dead_code, reason = "dropping it releases the change")] oneshot::Sender<()>,
);

impl Pauses {
    /// The hook to give the core, and the handle that holds its changes
    /// (not holding yet).
    pub fn new() -> (Pause, Self) {
        let holding = Arc::new(AtomicBool::new(false));
        let (arrive, arrivals) = mpsc::unbounded_channel();
        let hook_holding = Arc::clone(&holding);
        let pause: Pause = Arc::new(move |moment| {
            let holding = hook_holding.load(Ordering::SeqCst);
            let arrive = arrive.clone();
            Box::pin(async move {
                if !holding {
                    return;
                }
                let (go_on, released) = oneshot::channel();
                if arrive.send((moment, go_on)).is_ok() {
                    // Released, or the test dropped its handle: go on.
                    let _ = released.await;
                }
            })
        });
        let pauses = Self {
            holding,
            arrivals,
            reached: HashMap::new(),
        };
        (pause, pauses)
    }

    pub fn hold(&self, holding: bool) {
        self.holding.store(holding, Ordering::SeqCst);
    }

    /// Waits until the change stands at `moment`, and holds it there.
    pub async fn at(&mut self, moment: Moment) -> Held {
        loop {
            if let Some(go_on) = self.reached.remove(&moment) {
                return Held(go_on);
            }
            let (reached, go_on) = tokio::time::timeout(MOMENT_TIMEOUT, self.arrivals.recv())
                .await
                .unwrap_or_else(|_| panic!("the change never reached {moment:?}"))
                .expect("the core is gone");
            assert!(
                self.reached.insert(reached, go_on).is_none(),
                "{reached:?} twice"
            );
        }
    }
}
