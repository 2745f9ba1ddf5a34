//! Account deletion erases every row of schema `auth` that refers to the
//! user and publishes `user.deleted`.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn deleting_the_account_erases_it_and_announces_it() {
    let app = spawn_app().await;
    let mut events = app.listen("user.deleted").await;
    let tokens = app.register("walt").await;
    let other = app.register("xena").await;
    let token = tokens["access_token"].as_str().unwrap();
    let user_id = uuid::Uuid::parse_str(tokens["user"]["id"].as_str().unwrap()).unwrap();
    // Leave traces everywhere: a second session, a refresh, failed logins.
    let second = app.login("walt", PASSWORD).await.body;
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": second["refresh_token"]}),
    )
    .await;
    app.login("walt", "wrong-password-z").await;

    app.delete(
        "/api/users/account",
        token,
        Some(json!({"password": "wrong-password-z"})),
    )
    .await
    .assert_problem(403);
    app.delete_account(token).await;

    let delivery = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("user.deleted within 30 s")
        .expect("a delivery")
        .expect("no consumer error");
    let event: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(event["user_id"], user_id.to_string());
    assert_eq!(delivery.routing_key.as_str(), "user.deleted");

    // The relay deletes the outbox row once RabbitMQ confirmed it.
    let mut remaining = i64::MAX;
    for _ in 0..50 {
        remaining = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM auth.users WHERE id = $1) \
                  + (SELECT count(*) FROM auth.sessions WHERE user_id = $1) \
                  + (SELECT count(*) FROM auth.refresh_tokens WHERE user_id = $1) \
                  + (SELECT count(*) FROM auth.login_attempts WHERE user_id = $1) \
                  + (SELECT count(*) FROM auth.outbox WHERE payload::text LIKE '%' || $1::text || '%')",
        )
        .bind(user_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if remaining == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining, 0, "rows of schema auth still refer to the user");

    for t in [token, second["access_token"].as_str().unwrap()] {
        app.until_unauthorized("/api/auth/validate", t, crate::helpers::REVOKED_WITHIN)
            .await;
        app.get("/api/users/profile", t).await.assert_problem(401);
    }
    app.login("walt", PASSWORD).await.assert_problem(401);
    // Other users are untouched.
    assert_eq!(
        app.get(
            "/api/users/profile",
            other["access_token"].as_str().unwrap()
        )
        .await
        .status,
        StatusCode::OK
    );
    app.finish().await;
}
