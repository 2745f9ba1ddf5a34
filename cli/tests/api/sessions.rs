//! Sessions: listing, revoking, logout, refresh rotation and reuse detection.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Options, PASSWORD, TestApp, spawn_app, spawn_app_with};

/// Why the app's only session was revoked, if it was.
async fn revoked_reason(app: &TestApp) -> Option<String> {
    sqlx::query_scalar("SELECT revoked_reason FROM auth.sessions")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = spawn_app().await;
    app.register("hana").await;
    let second = app.login("hana", PASSWORD).await;
    let token = second.body["access_token"].as_str().unwrap();
    let list = app.get("/api/auth/sessions", token).await;
    assert_eq!(list.status, StatusCode::OK);
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["user_agent"] == "pai-tests"));
    assert!(sessions.iter().all(|s| s["expires_at"].is_string()));
    app.finish().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = spawn_app().await;
    let first = app.register("ivan").await;
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let old_access = first["access_token"].as_str().unwrap();

    let rotated = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": old_refresh}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_refresh = rotated.body["refresh_token"].as_str().unwrap();
    let new_access = rotated.body["access_token"].as_str().unwrap();
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(
        app.get("/api/users/profile", new_access).await.status,
        StatusCode::OK
    );

    // The stored tokens are hashes, never the tokens themselves.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM auth.refresh_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|h| h.len() == 32 && h != old_refresh.as_bytes())
    );

    // Reusing the old token fails and revokes the whole session.
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": old_refresh}),
    )
    .await
    .assert_problem(401);
    let reason = revoked_reason(&app).await;
    assert_eq!(reason.as_deref(), Some("refresh token reuse"));
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": new_refresh}),
    )
    .await
    .assert_problem(401);
    // The gateway that answered the reuse refuses the session at once.
    for token in [old_access, new_access] {
        app.get("/api/auth/validate", token)
            .await
            .assert_problem(401);
        app.get("/api/users/profile", token)
            .await
            .assert_problem(401);
    }
    app.finish().await;
}

/// ASVS 10.4.8: a session's refresh lifetime is absolute. It is set once,
/// at login, `REFRESH_TOKEN_LIFETIME_DAYS` ahead; refreshing never moves it,
/// and a refresh after it is refused without revoking anything for reuse.
#[tokio::test]
async fn refreshing_never_extends_the_sessions_absolute_lifetime() {
    let app = spawn_app_with(Options::default().var("REFRESH_TOKEN_LIFETIME_DAYS", "2")).await;
    let first = app.register("kenji").await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let ends_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT expires_at FROM auth.sessions",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let ends = ends_at().await;
    let ahead = ends - chrono::Utc::now();
    assert!(
        ahead <= chrono::Duration::days(2)
            && ahead > chrono::Duration::days(2) - chrono::Duration::minutes(1),
        "the session ends {ahead} after login, not 2 days"
    );

    let rotated = app
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(ends_at().await, ends, "a refresh moved the session's end");
    let next = rotated.body["refresh_token"].as_str().unwrap();

    // Two days later (the end moved into the past): the unused, current
    // refresh token is refused and the session is no longer listed.
    sqlx::query("UPDATE auth.sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    app.post("/api/auth/refresh", None, json!({"refresh_token": next}))
        .await
        .assert_problem(401);
    let reason = revoked_reason(&app).await;
    assert_eq!(reason, None, "an expired session is not a reuse");
    let again = app.login("kenji", PASSWORD).await;
    let token = again.body["access_token"].as_str().unwrap();
    let list = app.get("/api/auth/sessions", token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn unknown_refresh_token_is_refused() {
    let app = spawn_app().await;
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": "bm90LWEtdG9rZW4"}),
    )
    .await
    .assert_problem(401);
    app.finish().await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let tokens = app.register("jade").await;
    let token = tokens["access_token"].as_str().unwrap();
    let r = app.post("/api/auth/logout", Some(token), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get("/api/auth/validate", token)
        .await
        .assert_problem(401);
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await
    .assert_problem(401);
    let revoked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth.sessions WHERE revoked_reason = 'logout'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(revoked, 1);
    app.finish().await;
}

#[tokio::test]
async fn users_only_see_and_revoke_their_own_sessions() {
    let app = spawn_app().await;
    let a = app.register("kate").await;
    let b = app.register("liam").await;
    let a_token = a["access_token"].as_str().unwrap();
    let b_token = b["access_token"].as_str().unwrap();
    let a_sessions = app.get("/api/auth/sessions", a_token).await;
    let a_session = a_sessions.body["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let b_sessions = app.get("/api/auth/sessions", b_token).await;
    let b_ids: Vec<&str> = b_sessions.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(b_ids.len(), 1);
    assert!(!b_ids.contains(&a_session.as_str()));

    // B revoking A's session: 404, exactly like a session that does not exist.
    let foreign = app
        .delete(&format!("/api/auth/sessions/{a_session}"), b_token, None)
        .await;
    foreign.assert_problem(404);
    let missing = app
        .delete(
            &format!("/api/auth/sessions/{}", uuid::Uuid::new_v4()),
            b_token,
            None,
        )
        .await;
    missing.assert_problem(404);
    assert_eq!(foreign.body["detail"], missing.body["detail"]);
    let garbage = app
        .delete("/api/auth/sessions/not-a-uuid", b_token, None)
        .await;
    garbage.assert_problem(404);
    assert_eq!(
        app.get("/api/users/profile", a_token).await.status,
        StatusCode::OK
    );
    let still_live: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM auth.sessions WHERE id = $1")
            .bind(uuid::Uuid::parse_str(&a_session).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(still_live.is_none());
    app.finish().await;
}
