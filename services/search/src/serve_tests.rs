//! A stopped service lets go of its indexes though its routes live on:
//! they stay registered in the process's `LocalServers` while any client
//! in the process does (the inference service's answers hold a search
//! client, and search's embedder holds the inference service's routes: a
//! cycle that outlives both), and a service restarted on the same folder
//! must not find the old one's indexes still mapped.

use std::time::Duration;

use pai_common::config::Env;
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, with_bearer};
use pai_proto::v1::DeleteSourceRequest;
use pai_proto::v1::search_internal_client::SearchInternalClient;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::repo::{self, NewChunk, Source};
use crate::service::testing::admin_url;
use crate::vector_index::DIMENSIONS;
use crate::{SearchSettings, held_under, serve};

const JWT_SECRET: &str = "search-serve-tests-0123456789-abcdefghijklmnopqrstuvwxyz";
/// Nothing listens here: the embedder is never called (nothing is
/// embedded), and the event consumer and the revocation feed retry until
/// the service stops.
const NOWHERE: &str = "127.0.0.1:1";

fn delete_nothing(token: &str) -> tonic::Request<DeleteSourceRequest> {
    with_bearer(
        tonic::Request::new(DeleteSourceRequest {
            user_id: Uuid::new_v4().to_string(),
            source_kind: "document".into(),
            source_id: Uuid::new_v4().to_string(),
            more_source_ids: Vec::new(),
        }),
        token,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_holds_no_index_while_its_routes_live() {
    let db_name = format!("pai_test_search_{}", Uuid::new_v4().simple());
    let url = pai_common::db::with_database(&admin_url(), &db_name);
    pai_common::db::ensure_database(&url)
        .await
        .expect("create the test database");
    let pool = PgPool::connect(&url).await.expect("test pool");
    pai_common::db::migrate(&pool, crate::SCHEMA, &crate::MIGRATOR)
        .await
        .expect("migrate");
    // A user's chunk, stored before the service starts: the start rebuilds
    // the indexes from it and leaves the user's open.
    let text = "ledger shared invoice";
    let mut embedding = vec![0.0; DIMENSIONS];
    embedding[0] = 1.0;
    let mut tx = pool.begin().await.expect("begin");
    repo::replace_source(
        &mut tx,
        &Source {
            user_id: Uuid::new_v4(),
            kind: "document".into(),
            id: Uuid::new_v4(),
            title: "notes.pdf".into(),
            category: "generic".into(),
        },
        &[NewChunk {
            ordinal: 0,
            page: 1,
            start: 0,
            end: text.len() as i32,
            text: text.into(),
            embedding,
        }],
    )
    .await
    .expect("store a chunk");
    repo::bump_generation(&mut tx, pai_common::shards::Shard::ONLY)
        .await
        .expect("generation");
    tx.commit().await.expect("commit");

    let dir = std::env::temp_dir().join(format!("pai-search-serve-{}", Uuid::new_v4()));
    let settings = SearchSettings::from_env(&Env::from_pairs([
        ("DATABASE_URL", url.clone()),
        ("JWT_SECRET_KEY", JWT_SECRET.to_owned()),
        ("VECTOR_DB_PATH", dir.to_string_lossy().into_owned()),
        ("AMQP_URL", format!("amqp://guest:guest@{NOWHERE}/%2f")),
        ("AUTH_URL", format!("http://{NOWHERE}")),
        ("INFERENCE_URL", format!("http://{NOWHERE}")),
    ]))
    .expect("settings");
    let service = JwtKeys::new(&settings.jwt).issue_service("documents");
    let (listener, addr) = pai_common::grpc::bind("127.0.0.1:0").await.expect("bind");
    let local = LocalServers::new(true);
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(serve(
        settings,
        pool.clone(),
        listener,
        shutdown.clone(),
        local.clone(),
    ));
    // A client in this process, kept past the service's end.
    let mut client =
        SearchInternalClient::new(local.channel(&format!("http://{addr}")).expect("channel"));
    let answered = tokio::time::timeout(
        Duration::from_secs(60),
        client.delete_source(delete_nothing(&service)),
    )
    .await
    .expect("the service answers once it has started")
    .expect("delete_source");
    assert_eq!(answered.into_inner().deleted, 0);
    let held = held_under(&dir);
    assert!(held.1 > 0, "the rebuilt user's index is open: {held:?}");

    shutdown.cancel();
    serving
        .await
        .expect("the service's task")
        .expect("the service stopped cleanly");
    assert_eq!(
        held_under(&dir),
        (0, 0),
        "the stopped service's indexes are still open"
    );
    let status = client
        .delete_source(delete_nothing(&service))
        .await
        .expect_err("a stopped service answers nothing");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    drop((client, local));
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
    ))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
}
