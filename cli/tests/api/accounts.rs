//! Register, login, profile, change password, status, deactivate/reactivate.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn register_returns_tokens_and_stores_a_hashed_password() {
    let app = spawn_app().await;
    let body = app.register("alice").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["is_admin"], false);
    assert_eq!(body["user"]["is_active"], true);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let (hash, is_admin): (String, bool) =
        sqlx::query_as("SELECT password_hash, is_admin FROM auth.users WHERE email = $1")
            .bind("alice@example.com")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    assert!(!is_admin);
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id \
         WHERE u.email = 'alice@example.com' AND s.user_agent = 'pai-tests' AND s.ip = '127.0.0.1'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(sessions, 1);
    app.finish().await;
}

#[tokio::test]
async fn duplicate_email_or_username_conflicts() {
    let app = spawn_app().await;
    app.register("bob").await;
    let same_email = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "BOB@example.com", "username": "other", "password": PASSWORD}),
        )
        .await;
    same_email.assert_problem(409);
    let same_name = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "b2@example.com", "username": "Bob", "password": PASSWORD}),
        )
        .await;
    same_name.assert_problem(409);
    app.finish().await;
}

#[tokio::test]
async fn login_by_email_or_username_and_read_profile() {
    let app = spawn_app().await;
    app.register("carol").await;
    let by_email = app.login("carol", PASSWORD).await;
    assert_eq!(by_email.status, StatusCode::OK, "{}", by_email.body);
    let by_name = app
        .post(
            "/api/auth/login",
            None,
            json!({"username": "carol", "password": PASSWORD}),
        )
        .await;
    assert_eq!(by_name.status, StatusCode::OK);
    let token = by_name.body["access_token"].as_str().unwrap();
    let profile = app.get("/api/users/profile", token).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.body["username"], "carol");
    assert_eq!(profile.body["email"], "carol@example.com");
    let attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth.login_attempts a JOIN auth.users u ON u.id = a.user_id \
         WHERE u.username = 'carol' AND a.success",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    // Registering signs in too: three successful sign-ins.
    assert_eq!(attempts, 3);
    app.finish().await;
}

#[tokio::test]
async fn update_profile_changes_the_row() {
    let app = spawn_app().await;
    let tokens = app.register("dave").await;
    app.register("erin").await;
    let token = tokens["access_token"].as_str().unwrap();
    let updated = app
        .call(
            Method::PUT,
            "/api/users/profile",
            Some(token),
            Some(json!({"display_name": "Dave D.", "email": "dave2@example.com"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["display_name"], "Dave D.");
    assert_eq!(updated.body["email"], "dave2@example.com");
    let row: (String, String) =
        sqlx::query_as("SELECT email, display_name FROM auth.users WHERE username = 'dave'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(row, ("dave2@example.com".into(), "Dave D.".into()));
    let taken = app
        .call(
            Method::PUT,
            "/api/users/profile",
            Some(token),
            Some(json!({"username": "erin"})),
        )
        .await;
    taken.assert_problem(409);
    let invalid = app
        .call(
            Method::PUT,
            "/api/users/profile",
            Some(token),
            Some(json!({"email": "not-an-email"})),
        )
        .await;
    invalid.assert_problem(400);
    // The problem names the field, for a form to show the error beside it.
    assert_eq!(invalid.body["field"], "email", "{}", invalid.body);
    app.finish().await;
}

#[tokio::test]
async fn password_policy_names_the_rule() {
    let app = spawn_app().await;
    for (password, rule) in [
        ("short-pw", "min_length"),
        ("password1234", "common_password"),
        ("qwertyuiop123", "common_password"),
    ] {
        let r = app
            .post(
                "/api/auth/register",
                None,
                json!({"email": "p@example.com", "username": "pat", "password": password}),
            )
            .await;
        r.assert_problem(422);
        assert_eq!(r.body["rule"], rule, "{}", r.body);
        assert!(r.body["detail"].as_str().unwrap().contains(rule));
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
    app.finish().await;
}

#[tokio::test]
async fn password_min_length_is_configurable() {
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Options::default().var("PASSWORD_MIN_LENGTH", "20"),
    )
    .await;
    let r = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "p@example.com", "username": "pat", "password": "nineteen-chars-abcd"}),
        )
        .await;
    r.assert_problem(422);
    assert!(r.body["detail"].as_str().unwrap().contains("20"));
    app.finish().await;
}

#[tokio::test]
async fn change_password_keeps_this_session_and_takes_the_new_password() {
    let app = spawn_app().await;
    let tokens = app.register("fay").await;
    let token = tokens["access_token"].as_str().unwrap();
    let wrong_old = app
        .post(
            "/api/users/change-password",
            Some(token),
            json!({"old_password": "not-the-password", "new_password": "a-brand-new-secret-99"}),
        )
        .await;
    wrong_old.assert_problem(403);
    let weak_new = app
        .post(
            "/api/users/change-password",
            Some(token),
            json!({"old_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    weak_new.assert_problem(422);
    let changed = app
        .post(
            "/api/users/change-password",
            Some(token),
            json!({"old_password": PASSWORD, "new_password": "a-brand-new-secret-99"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    assert_eq!(
        app.get("/api/users/profile", token).await.status,
        StatusCode::OK
    );
    app.login("fay", PASSWORD).await.assert_problem(401);
    assert_eq!(
        app.login("fay", "a-brand-new-secret-99").await.status,
        StatusCode::OK
    );
    app.finish().await;
}

#[tokio::test]
async fn account_status_deactivate_and_reactivate() {
    let app = spawn_app().await;
    let tokens = app.register("gus").await;
    let token = tokens["access_token"].as_str().unwrap();
    let status = app.get("/api/users/account-status", token).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["status"], "active");
    assert!(status.body["locked_until"].is_null());

    app.post(
        "/api/users/deactivate",
        Some(token),
        json!({"password": "wrong-password-1"}),
    )
    .await
    .assert_problem(403);
    let deactivated = app
        .post(
            "/api/users/deactivate",
            Some(token),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::NO_CONTENT);
    let active: bool =
        sqlx::query_scalar("SELECT is_active FROM auth.users WHERE username = 'gus'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!active);
    // A deactivated account cannot log in until it is reactivated.
    app.login("gus", PASSWORD).await.assert_problem(403);
    app.post(
        "/api/users/reactivate",
        None,
        json!({"email": "gus@example.com", "password": "wrong-password-1"}),
    )
    .await
    .assert_problem(401);
    let reactivated = app
        .post(
            "/api/users/reactivate",
            None,
            json!({"email": "gus@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(reactivated.status, StatusCode::OK, "{}", reactivated.body);
    assert_eq!(reactivated.body["user"]["is_active"], true);
    let token = reactivated.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/api/users/profile", token).await.status,
        StatusCode::OK
    );
    app.finish().await;
}

/// An account imported from the older single-user install keeps its bcrypt
/// hash: the password signs in, and the hash is argon2id from then on.
#[tokio::test]
async fn an_imported_bcrypt_hash_signs_in_and_becomes_argon2id() {
    let app = spawn_app().await;
    app.register("olga").await;
    let old_password = "lantern-harbour-1987";
    let imported = bcrypt::hash(old_password, 4).unwrap();
    assert!(imported.starts_with("$2b$04$"));
    sqlx::query("UPDATE auth.users SET password_hash = $1 WHERE username = 'olga'")
        .bind(&imported)
        .execute(&app.db)
        .await
        .unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT password_hash FROM auth.users WHERE username = 'olga'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };

    assert_eq!(
        app.login("olga", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stored().await, imported, "a wrong password changes nothing");
    let r = app.login("olga", old_password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let upgraded = stored().await;
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert!(!upgraded.contains(old_password));
    let again = app.login("olga", old_password).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    app.finish().await;
}
