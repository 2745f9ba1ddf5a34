//! An upload is recorded only once it is complete: a body that breaks off in
//! the middle of the file, or a gRPC upload stream without its end marker,
//! leaves no row, no file and no ingest job.

use std::time::Duration;

use futures::StreamExt;
use pai_proto::v1::document_service_client::DocumentServiceClient;
use pai_proto::v1::upload_request::Part;
use pai_proto::v1::{UploadEnd, UploadMetadata, UploadRequest};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{TestApp, corpus, spawn_app};

const FILE: &str = "gen_crazy_ones_pdfa.pdf";
const BOUNDARY: &str = "pai-test-boundary-7d1f";

/// The multipart body of one `file` field holding `file`, and the offset
/// where the file's bytes start.
fn multipart_body(file: &[u8]) -> (Vec<u8>, usize) {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    let start = body.len();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (body, start)
}

fn head(app: &TestApp, token: &str, framing: &str) -> String {
    format!(
        "POST /api/documents HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n",
        app.addr
    )
}

/// Reads what the server answers until it closes the connection (or 30 s).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The user's files under the upload folder, partial ones included.
fn files_of(app: &TestApp, user_id: &str) -> Vec<String> {
    std::fs::read_dir(app.data_dir.join("uploads").join(user_id))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn rows(app: &TestApp, sql: &str, user_id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(Uuid::parse_str(user_id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_body_cut_in_the_middle_of_the_file_leaves_nothing() {
    let app = spawn_app().await;
    let mut jobs = app.listen("ingest.document").await;
    let user = app.register("truncated").await;
    let token = user["access_token"].as_str().unwrap();
    let user_id = user["user"]["id"].as_str().unwrap();
    let file = std::fs::read(corpus(&format!("pdf/dev/{FILE}"))).unwrap();
    let (body, start) = multipart_body(&file);
    let cut = start + file.len() / 2;

    // 1. Chunked, and the chunk after the first half of the file is garbage:
    // the body breaks off while the connection stays open for the answer.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            head(
                &app,
                token,
                "Transfer-Encoding: chunked\r\nConnection: close\r\n",
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream
        .write_all(format!("{:x}\r\n", cut).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..cut]).await.unwrap();
    stream.write_all(b"\r\nnot-a-chunk-size\r\n").await.unwrap();
    stream.flush().await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");

    // 2. A declared length that never arrives: the client goes away
    // half-way through the file.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(head(&app, token, &format!("Content-Length: {}\r\n", body.len())).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..cut]).await.unwrap();
    stream.flush().await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    // A whole upload after them is recorded, and its job is the first one
    // published: the outbox relays in order, so a job queued for a cut
    // upload would have come before it.
    let good = app.upload(token, FILE).await;
    let good_id = good["id"].as_str().unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(30), jobs.next())
        .await
        .expect("an ingest job within 30 s")
        .expect("a delivery")
        .expect("no consumer error");
    let job: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(job["document_id"], good_id, "the first job queued");
    let done = app.wait_document(token, good_id).await;
    assert_eq!(done["status"], "indexed", "{done}");

    let listed = app.get("/api/documents", token).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["documents"].as_array().unwrap().len(), 1);
    assert_eq!(
        rows(
            &app,
            "SELECT count(*) FROM documents.documents WHERE user_id = $1",
            user_id
        )
        .await,
        1
    );
    assert_eq!(
        rows(
            &app,
            "SELECT count(DISTINCT source_id) FROM search.chunks WHERE user_id = $1",
            user_id
        )
        .await,
        1
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM documents.outbox")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    // The connection that went away may still be unwinding: its partial
    // file goes with it.
    let expected = vec![format!("{good_id}.pdf")];
    let mut files = files_of(&app, user_id);
    for _ in 0..100 {
        if files == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        files = files_of(&app, user_id);
    }
    assert_eq!(files, expected, "only the whole upload's file");
    app.finish().await;
}

fn upload_message(part: Part) -> UploadRequest {
    UploadRequest { part: Some(part) }
}

#[tokio::test]
async fn a_grpc_upload_without_its_end_marker_is_refused() {
    let app = spawn_app().await;
    let user = app.register("unmarked").await;
    let token = user["access_token"].as_str().unwrap();
    let user_id = user["user"]["id"].as_str().unwrap();
    let file = std::fs::read(corpus(&format!("pdf/dev/{FILE}"))).unwrap();
    let channel = pai_common::grpc::channel(&format!("http://{}", app.documents_addr)).unwrap();
    let mut client = DocumentServiceClient::new(channel);
    let metadata = || {
        upload_message(Part::Metadata(UploadMetadata {
            filename: "cut.pdf".into(),
            content_type: "application/pdf".into(),
            title: String::new(),
            imported: None,
        }))
    };
    let half = file[..file.len() / 2].to_vec();

    let cases = [
        (
            "no end marker",
            vec![metadata(), upload_message(Part::Data(half.clone()))],
        ),
        (
            "a marker counting more bytes",
            vec![
                metadata(),
                upload_message(Part::Data(half.clone())),
                upload_message(Part::End(UploadEnd {
                    bytes: file.len() as u64,
                })),
            ],
        ),
    ];
    for (what, messages) in cases {
        let request = pai_common::identity::with_bearer(
            tonic::Request::new(futures::stream::iter(messages)),
            token,
        );
        let refused = client.upload(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
    }
    assert_eq!(
        rows(
            &app,
            "SELECT count(*) FROM documents.documents WHERE user_id = $1",
            user_id
        )
        .await,
        0
    );
    assert!(
        files_of(&app, user_id).is_empty(),
        "{:?}",
        files_of(&app, user_id)
    );

    // With its marker the same stream is a document.
    let messages = vec![
        metadata(),
        upload_message(Part::Data(file.clone())),
        upload_message(Part::End(UploadEnd {
            bytes: file.len() as u64,
        })),
    ];
    let request = pai_common::identity::with_bearer(
        tonic::Request::new(futures::stream::iter(messages)),
        token,
    );
    let document = client.upload(request).await.unwrap().into_inner();
    assert_eq!(document.bytes, file.len() as u64);
    assert_eq!(document.status, "queued");
    app.finish().await;
}
