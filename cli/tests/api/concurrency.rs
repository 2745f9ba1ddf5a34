//! Many users at once.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Options, PASSWORD, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_users_register_and_log_in_concurrently() {
    let owned = spawn_app_with(Options::default().var("DB_POOL_SIZE", "20")).await;
    let app = &owned;
    let results = futures::future::join_all((0..50).map(|i| async move {
        let name = format!("crowd{i}");
        let registered = app
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("{name}@example.com"), "username": name, "password": PASSWORD}),
            )
            .await;
        assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
        let logged_in = app.login(&name, PASSWORD).await;
        assert_eq!(logged_in.status, StatusCode::OK, "{}", logged_in.body);
        let token = logged_in.body["access_token"].as_str().unwrap().to_owned();
        let session = app.get("/api/auth/validate", &token).await.body["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (registered.body["user"]["id"].as_str().unwrap().to_owned(), session)
    }))
    .await;
    let users: HashSet<_> = results.iter().map(|(u, _)| u.clone()).collect();
    let sessions: HashSet<_> = results.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(users.len(), 50);
    assert_eq!(sessions.len(), 50);
    let rows: i64 = sqlx::query_scalar("SELECT count(DISTINCT user_id) FROM auth.sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 50);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(total, 100);
    owned.finish().await;
}
