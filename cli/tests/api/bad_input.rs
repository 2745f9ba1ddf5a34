//! Bad input gets the right 4xx with a problem body, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Options, spawn_app, spawn_app_with};

async fn raw(
    app: &crate::helpers::TestApp,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> crate::helpers::Response {
    let r = app
        .http
        .request(method, app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    crate::helpers::Response {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn malformed_missing_oversized_and_unknown_are_problems() {
    let app = spawn_app().await;
    let malformed = raw(
        &app,
        Method::POST,
        "/api/auth/login",
        "application/json",
        b"{\"email\": ".to_vec(),
    )
    .await;
    malformed.assert_problem(400);

    let missing = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "a@example.com"}),
        )
        .await;
    missing.assert_problem(422);
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap()
            .contains("username"),
        "{}",
        missing.body
    );

    let empty = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "", "username": "", "password": ""}),
        )
        .await;
    empty.assert_problem(400);

    let wrong_type = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": 42, "password": true}),
        )
        .await;
    wrong_type.assert_problem(422);

    let not_json = raw(
        &app,
        Method::POST,
        "/api/auth/login",
        "text/plain",
        b"hello".to_vec(),
    )
    .await;
    not_json.assert_problem(415);

    let huge = vec![b'a'; 200 * 1024];
    let mut body = b"{\"email\":\"".to_vec();
    body.extend_from_slice(&huge);
    body.extend_from_slice(b"\",\"password\":\"x\"}");
    let oversized = raw(
        &app,
        Method::POST,
        "/api/auth/login",
        "application/json",
        body,
    )
    .await;
    oversized.assert_problem(413);

    let unknown = app.call(Method::GET, "/api/nothing-here", None, None).await;
    unknown.assert_problem(404);
    let wrong_method = app.call(Method::PATCH, "/api/auth/login", None, None).await;
    wrong_method.assert_problem(405);

    let bad_email = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "no-at-sign", "username": "zed", "password": "saffron-meadow-thistle"}),
        )
        .await;
    bad_email.assert_problem(400);
    let bad_name = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "z@example.com", "username": "a b", "password": "saffron-meadow-thistle"}),
        )
        .await;
    bad_name.assert_problem(400);
    let nothing: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(nothing, 0);
    app.finish().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = spawn_app_with(
        Options::default()
            .var("RATE_LIMIT_RPS", "1")
            .var("RATE_LIMIT_BURST", "2"),
    )
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..10 {
        let r = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "x@example.com", "password": "y"}),
            )
            .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    limited.assert_problem(429);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    assert_eq!(&statuses[..2], &[401, 401]);
    app.finish().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app().await; // ALLOWED_ORIGINS=http://allowed.example
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("http://allowed.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "http://allowed.example"
    );
    let denied = preflight("http://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.finish().await;
}

/// Query strings, paths and multipart bodies that do not parse are refused
/// by axum before a handler runs; they answer problem+json too.
#[tokio::test]
async fn rejections_before_a_handler_are_problems() {
    let app = spawn_app().await;
    let tokens = app.register("uma").await;
    let token = tokens["access_token"].as_str().unwrap();
    for path in [
        "/api/documents?limit=-1",
        "/api/search?q=x&k=-1",
        "/api/admin/users?limit=many",
    ] {
        let r = app.get(path, token).await;
        r.assert_problem(400);
        assert!(
            r.body["detail"].as_str().unwrap().contains("query string"),
            "{path}: {}",
            r.body
        );
    }
    let r = app
        .http
        .post(app.url("/api/documents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status);
    app.finish().await;
}

/// PostgreSQL's text cannot hold U+0000: a body with one is refused with
/// 400, never passed on to fail in the database (the fuzzer found a 500).
#[tokio::test]
async fn a_nul_character_in_a_body_or_a_query_is_refused() {
    let app = spawn_app().await;
    let tokens = app.register("nils").await;
    let token = tokens["access_token"].as_str().unwrap();
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"login": "ni\u{0}ls", "password": "x"}),
        )
        .await;
    login.assert_problem(400);
    assert!(login.body["detail"].as_str().unwrap().contains("NUL"));
    let profile = app
        .call(
            Method::PUT,
            "/api/users/profile",
            Some(token),
            Some(json!({"display_name": "Nils\u{0}"})),
        )
        .await;
    profile.assert_problem(400);
    for path in ["/api/documents?category=a%00b", "/api/search?q=%00"] {
        let r = app.get(path, token).await;
        r.assert_problem(400);
        assert!(r.body["detail"].as_str().unwrap().contains("NUL"), "{path}");
    }
    let stored: String =
        sqlx::query_scalar("SELECT display_name FROM auth.users WHERE username = 'nils'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, "");
    app.finish().await;
}
