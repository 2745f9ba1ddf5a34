//! An erased user stays erased: an upload that finishes after `user.deleted`
//! was handled is refused and leaves no row, file or job, and the search
//! service refuses to store chunks of a user recorded as erased.

use std::time::Duration;

use pai_common::JwtKeys;
use pai_common::config::JwtSettings;
use pai_proto::v1::search_internal_client::SearchInternalClient;
use pai_proto::v1::{ChunkInput, DeleteUserRequest, IndexChunksRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::helpers::{TestApp, corpus, spawn_app};

const FILE: &str = "gen_crazy_ones_pdfa.pdf";
const BOUNDARY: &str = "pai-erasure-boundary-41c9";

/// (documents, chunks, outbox jobs) of the user, and whether their upload
/// folder exists.
async fn traces(app: &TestApp, user_id: Uuid) -> (i64, i64, i64, bool) {
    let (documents, chunks, jobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM documents.documents WHERE user_id = $1), \
                (SELECT count(*) FROM search.chunks WHERE user_id = $1), \
                (SELECT count(*) FROM documents.outbox WHERE payload->>'user_id' = $1::text)",
    )
    .bind(user_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let folder = app.data_dir.join("uploads").join(user_id.to_string());
    (documents, chunks, jobs, folder.exists())
}

#[tokio::test]
async fn an_upload_that_finishes_after_the_erasure_leaves_nothing() {
    let app = spawn_app().await;
    let user = app.register("racer").await;
    let token = user["access_token"].as_str().unwrap();
    let user_id = Uuid::parse_str(user["user"]["id"].as_str().unwrap()).unwrap();
    let first = app.upload(token, FILE).await;
    app.wait_document(token, first["id"].as_str().unwrap())
        .await;

    // An upload whose request is accepted (the gateway checked the token and
    // asks for the body: 100 Continue) before the account is deleted...
    let file = std::fs::read(corpus(&format!("pdf/dev/{FILE}"))).unwrap();
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"late.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/documents HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut continued = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut continued))
        .await
        .expect("an answer to Expect within 30 s")
        .unwrap();
    assert!(
        continued.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&continued)
    );

    // ...whose bytes arrive only once both services erased the user.
    app.delete_account(token).await;
    let mut left = traces(&app, user_id).await;
    for _ in 0..300 {
        if left == (0, 0, 0, false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = traces(&app, user_id).await;
    }
    assert_eq!(left, (0, 0, 0, false), "the erasure ran");

    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the upload's answer within 30 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Refused in the transaction that would have recorded it: nothing came
    // back, and nothing was queued.
    assert_eq!(traces(&app, user_id).await, (0, 0, 0, false));
    let erased: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents.erased_users WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(erased, 1);
    app.finish().await;
}

#[tokio::test]
async fn chunks_of_a_user_recorded_as_erased_are_refused() {
    let app = spawn_app().await;
    let keys = JwtKeys::new(&JwtSettings::from_env(&app.env).unwrap());
    let channel = pai_common::grpc::channel(&format!("http://{}", app.search_addr)).unwrap();
    let mut search = SearchInternalClient::new(channel);
    let request = |user_id: Uuid| {
        pai_common::identity::with_bearer(
            tonic::Request::new(IndexChunksRequest {
                user_id: user_id.to_string(),
                source_kind: "document".into(),
                source_id: Uuid::new_v4().to_string(),
                title: "Late".into(),
                category: "generic".into(),
                chunks: vec![ChunkInput {
                    ordinal: 0,
                    page: 1,
                    start: 0,
                    end: 30,
                    text: "indexed after the account went".into(),
                }],
            }),
            &keys.issue_service("documents"),
        )
    };
    let erased = Uuid::new_v4();
    let kept = Uuid::new_v4();
    // The search service's own erasure (what `user.deleted` runs) records
    // the user in the transaction that deletes their chunks.
    search
        .delete_user(pai_common::identity::with_bearer(
            tonic::Request::new(DeleteUserRequest {
                user_id: erased.to_string(),
            }),
            &keys.issue_service("documents"),
        ))
        .await
        .unwrap();
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM search.erased_users WHERE user_id = $1")
            .bind(erased)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, 1);

    let refused = search.index_chunks(request(erased)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    assert!(refused.message().contains("erased"), "{refused:?}");
    search.index_chunks(request(kept)).await.unwrap();
    let counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT user_id, count(*) FROM search.chunks GROUP BY user_id ORDER BY user_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(counts, [(kept, 1)]);
    app.finish().await;
}
