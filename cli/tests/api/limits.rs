//! Bounded work per request: the search query's length, the gateway's
//! request timeout, and metric labels a client cannot multiply.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_query_past_1000_characters_is_refused_with_422() {
    let app = spawn_app().await;
    let token = app.register("longquery").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let words: String = (0..200).map(|i| format!("w{i:03} ")).collect();
    let at_limit = &words[..1000];
    let r = app.search(&token, at_limit, "&mode=bm25").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let past_limit = format!("{at_limit}x");
    for mode in ["bm25", "hybrid"] {
        let r = app
            .search(&token, &past_limit, &format!("&mode={mode}"))
            .await;
        r.assert_problem(422);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("1000 characters"),
            "{}",
            r.body
        );
    }
    app.finish().await;
}

/// Sends `head` and part of a body it announces as longer, then waits for
/// the answer (at most `patience`).
async fn trickle(addr: std::net::SocketAddr, head: &str, patience: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"email\": \"a").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(patience, stream.read_to_end(&mut answer))
        .await
        .expect("no answer: the request was never timed out")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_that_outlives_its_timeout_is_answered_504() {
    let app = spawn_app_with(Options::default().var("REQUEST_TIMEOUT_SECS", "1")).await;
    let head = "POST /api/auth/login HTTP/1.1\r\nHost: pai\r\nConnection: close\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    let started = std::time::Instant::now();
    let answer = trickle(app.addr, head, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], 504);
    assert_eq!(body["detail"], "the request took too long; retry later");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    app.finish().await;
}

#[test]
fn a_timeout_of_zero_stops_start_up_naming_the_variable() {
    let env = pai_common::Env::from_pairs([("REQUEST_TIMEOUT_SECS", "0")]);
    let err = pai_gateway::GatewaySettings::from_env(&env).unwrap_err();
    assert_eq!(err.name, "REQUEST_TIMEOUT_SECS");
}

#[tokio::test]
async fn unknown_routes_and_methods_share_one_metric_label() {
    let app = spawn_app().await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let scans = [
        (Method::GET, format!("/wp-admin/{marker}.php")),
        (Method::GET, format!("/api/{marker}")),
        (Method::from_bytes(b"BREW").unwrap(), "/healthz".to_owned()),
        (
            Method::from_bytes(format!("X{marker}").as_bytes()).unwrap(),
            format!("/{marker}"),
        ),
    ];
    for (method, path) in scans {
        let r = app.call(method, &path, None, None).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
    }
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(&marker), "a client-made label: {text}");
    assert!(!text.contains("BREW"), "a client-made method label: {text}");
    assert!(text.contains("route=\"other\""), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    app.finish().await;
}
