//! Revocation reaches the gateway within 1 s: every way a session can end
//! makes its access tokens answer 401 long before they expire.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, REVOKED_WITHIN, spawn_app};

const WITHIN: Duration = Duration::from_secs(1);

/// Gateway-only (`validate`) and service-backed (`profile`) routes both refuse.
async fn assert_refused(app: &crate::helpers::TestApp, token: &str) {
    app.until_unauthorized("/api/auth/validate", token, WITHIN)
        .await;
    app.until_unauthorized("/api/users/profile", token, WITHIN)
        .await;
}

#[tokio::test]
async fn revoking_one_session_refuses_its_token() {
    let app = spawn_app().await;
    let first = app.register("mia").await;
    let second = app.login("mia", PASSWORD).await.body;
    let victim = first["access_token"].as_str().unwrap();
    let actor = second["access_token"].as_str().unwrap();
    let validate = app.get("/api/auth/validate", victim).await;
    assert_eq!(validate.status, StatusCode::OK);
    let session_id = validate.body["session_id"].as_str().unwrap().to_owned();

    let r = app
        .delete(&format!("/api/auth/sessions/{session_id}"), actor, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_refused(&app, victim).await;
    assert_eq!(
        app.get("/api/auth/validate", actor).await.status,
        StatusCode::OK
    );
    app.finish().await;
}

#[tokio::test]
async fn revoking_all_sessions_refuses_every_token() {
    let app = spawn_app().await;
    let a = app.register("noah").await;
    let b = app.login("noah", PASSWORD).await.body;
    let c = app.login("noah", PASSWORD).await.body;
    let keep = c["access_token"].as_str().unwrap();
    let r = app
        .delete("/api/auth/sessions/all?keep_current=true", keep, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revoked"], 2);
    for token in [&a, &b] {
        assert_refused(&app, token["access_token"].as_str().unwrap()).await;
    }
    assert_eq!(
        app.get("/api/auth/validate", keep).await.status,
        StatusCode::OK
    );

    let r = app.delete("/api/auth/sessions/all", keep, None).await;
    assert_eq!(r.body["revoked"], 1);
    assert_refused(&app, keep).await;
    app.finish().await;
}

#[tokio::test]
async fn changing_the_password_refuses_the_other_sessions() {
    let app = spawn_app().await;
    let other = app.register("olga").await;
    let current = app.login("olga", PASSWORD).await.body;
    let token = current["access_token"].as_str().unwrap();
    let r = app
        .post(
            "/api/users/change-password",
            Some(token),
            json!({"old_password": PASSWORD, "new_password": "violet-harbour-sunrise-7"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_refused(&app, other["access_token"].as_str().unwrap()).await;
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": other["refresh_token"]}),
    )
    .await
    .assert_problem(401);
    assert_eq!(
        app.get("/api/auth/validate", token).await.status,
        StatusCode::OK
    );
    app.finish().await;
}

#[tokio::test]
async fn deactivating_refuses_every_token() {
    let app = spawn_app().await;
    let a = app.register("pia").await;
    let b = app.login("pia", PASSWORD).await.body;
    let token = a["access_token"].as_str().unwrap();
    let r = app
        .post(
            "/api/users/deactivate",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_refused(&app, token).await;
    assert_refused(&app, b["access_token"].as_str().unwrap()).await;
    app.finish().await;
}

/// Sequence numbers are taken at insert, not at commit: a revocation whose
/// transaction commits after a later one's must still reach the gateway.
#[tokio::test]
async fn a_revocation_committed_after_a_later_one_is_not_skipped() {
    let app = spawn_app().await;
    let slow = app.register("ines").await;
    let fast = app.register("jon").await;
    let slow_token = slow["access_token"].as_str().unwrap();
    let fast_token = fast["access_token"].as_str().unwrap();
    let session_of = |token: &str| {
        let app = &app;
        let token = token.to_owned();
        async move {
            let r = app.get("/api/auth/validate", &token).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            uuid::Uuid::parse_str(r.body["session_id"].as_str().unwrap()).unwrap()
        }
    };
    let (slow_session, fast_session) = (session_of(slow_token).await, session_of(fast_token).await);
    let revoke = "INSERT INTO auth.revocations (session_id, expires_at) \
                  VALUES ($1, now() + interval '15 minutes') RETURNING seq";

    // The first transaction takes the lower number and stays open...
    let mut first = app.db.begin().await.unwrap();
    let low: i64 = sqlx::query_scalar(revoke)
        .bind(slow_session)
        .fetch_one(&mut *first)
        .await
        .unwrap();
    // ...while a second takes a higher one and commits, and is followed.
    let high: i64 = sqlx::query_scalar(revoke)
        .bind(fast_session)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(high > low);
    app.until_unauthorized("/api/auth/validate", fast_token, REVOKED_WITHIN)
        .await;
    assert_eq!(
        app.get("/api/auth/validate", slow_token).await.status,
        StatusCode::OK
    );

    // The lower number commits last: it is not skipped.
    first.commit().await.unwrap();
    app.until_unauthorized("/api/auth/validate", slow_token, REVOKED_WITHIN)
        .await;
    app.finish().await;
}
