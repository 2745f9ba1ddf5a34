//! Lockout after repeated failures, and no account enumeration.
use reqwest::StatusCode;

use crate::helpers::{Options, PASSWORD, spawn_app, spawn_app_with};

/// Long enough that a loaded machine cannot outlast it between two
/// requests; the test moves the lock into the past instead of waiting.
const LOCKOUT_SECONDS: i64 = 60;

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_until_the_duration_passes() {
    let app = spawn_app_with(
        Options::default().var("ACCOUNT_LOCKOUT_DURATION", LOCKOUT_SECONDS.to_string()),
    )
    .await;
    app.register("quinn").await;
    for attempt in 1..=4 {
        let r = app.login("quinn", "wrong-password-x").await;
        r.assert_problem(401);
        assert_eq!(
            r.body["detail"], "invalid email, username or password",
            "attempt {attempt}"
        );
    }
    let fifth = app.login("quinn", "wrong-password-x").await;
    fifth.assert_problem(423);
    assert!(fifth.body["locked_until"].is_string(), "{}", fifth.body);
    assert!(fifth.header("retry-after").is_some());

    // Locked even with the right password, with the unlock time.
    let right = app.login("quinn", PASSWORD).await;
    right.assert_problem(423);
    let until: chrono::DateTime<chrono::Utc> = right.body["locked_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = until - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(LOCKOUT_SECONDS - 10)
            && left <= chrono::Duration::seconds(LOCKOUT_SECONDS),
        "locked for {left} more, not the configured {LOCKOUT_SECONDS} s"
    );
    let stored: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT locked_until FROM auth.users WHERE username = 'quinn'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(stored.is_some());

    // The duration passes.
    sqlx::query(
        "UPDATE auth.users SET locked_until = locked_until - make_interval(secs => $1) \
         WHERE username = 'quinn'",
    )
    .bind((LOCKOUT_SECONDS + 1) as f64)
    .execute(&app.db)
    .await
    .unwrap();
    let after = app.login("quinn", PASSWORD).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    let row: (i32, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT failed_logins, locked_until FROM auth.users WHERE username = 'quinn'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row, (0, None));
    app.finish().await;
}

/// Wrong guesses of `username`'s password that were checked against its hash.
async fn checked_failures(app: &crate::helpers::TestApp, username: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM auth.login_attempts a JOIN auth.users u ON u.id = a.user_id \
         WHERE u.username = $1 AND a.password_checked AND NOT a.success",
    )
    .bind(username)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn parallel_wrong_passwords_are_counted_before_they_are_verified() {
    let app = spawn_app_with(
        Options::default()
            .var("ACCOUNT_LOCKOUT_DURATION", LOCKOUT_SECONDS.to_string())
            .var("RATE_LIMIT_RPS", "0"),
    )
    .await;
    app.register("petra").await;
    let guesses = (0..30).map(|i| {
        let app = &app;
        async move { app.login("petra", &format!("wrong-guess-number-{i}")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let locked = answers.iter().filter(|r| r.status.as_u16() == 423).count();
    for r in &answers {
        assert!(
            [401, 423].contains(&r.status.as_u16()),
            "{} {}",
            r.status,
            r.body
        );
    }
    assert!(
        locked >= 25,
        "only {locked} of 30 guesses were refused by the lock"
    );

    // The right password is refused while the lock holds.
    app.login("petra", PASSWORD).await.assert_problem(423);
    // At most the limit's worth of wrong guesses were checked at all.
    let checked = checked_failures(&app, "petra").await;
    assert!(
        (1..=5).contains(&checked),
        "{checked} wrong guesses were verified, the limit is 5"
    );
    app.finish().await;
}

/// Attempts being verified count toward the limit but never lock: only a
/// verified wrong password does. So a user's right logins sent at once
/// (several devices, a retrying client) all succeed.
#[tokio::test]
async fn right_passwords_sent_at_once_never_lock_their_own_account() {
    let app = spawn_app_with(Options::default().var("RATE_LIMIT_RPS", "0")).await;
    app.register("tess").await;
    let logins = (0..12).map(|_| app.login("tess", PASSWORD));
    for r in futures::future::join_all(logins).await {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let row: (i32, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT failed_logins, locked_until FROM auth.users WHERE username = 'tess'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row, (0, None));
    app.finish().await;
}

#[tokio::test]
async fn password_checks_behind_a_session_share_the_lockout() {
    let app = spawn_app_with(
        Options::default().var("ACCOUNT_LOCKOUT_DURATION", LOCKOUT_SECONDS.to_string()),
    )
    .await;
    let tokens = app.register("ravi").await;
    let token = tokens["access_token"].as_str().unwrap();
    let other = app.login("ravi", PASSWORD).await.body;
    let other = other["access_token"].as_str().unwrap();

    // change-password, deactivate and delete-account all count.
    let wrong = serde_json::json!({"password": "not-the-password-1"});
    let attempts = [
        app.post(
            "/api/users/change-password",
            Some(token),
            serde_json::json!({"old_password": "not-the-password-1", "new_password": "violet-harbour-sunrise-7"}),
        )
        .await,
        app.post("/api/users/deactivate", Some(token), wrong.clone()).await,
        app.delete("/api/users/account", token, Some(wrong.clone())).await,
        app.post("/api/users/deactivate", Some(token), wrong.clone()).await,
    ];
    for r in &attempts {
        r.assert_problem(403);
    }
    let fifth = app.delete("/api/users/account", token, Some(wrong)).await;
    fifth.assert_problem(423);
    assert!(fifth.header("retry-after").is_some());

    // Locked: the right password is refused, behind the session and at login.
    let right = app
        .delete(
            "/api/users/account",
            token,
            Some(serde_json::json!({"password": PASSWORD})),
        )
        .await;
    right.assert_problem(423);
    app.login("ravi", PASSWORD).await.assert_problem(423);
    assert_eq!(checked_failures(&app, "ravi").await, 5);
    let confirms: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth.login_attempts WHERE kind = 'confirm' AND NOT success",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(confirms, 6);

    // The lock signs nothing out, and the account is still there.
    for session in [token, other] {
        let profile = app.get("/api/users/profile", session).await;
        assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
        assert_eq!(profile.body["username"], "ravi");
    }
    app.finish().await;
}

/// An unknown login and a wrong password get the same answer. That both
/// cost one argon2id verification of the same cost is shown without a
/// clock: the unknown login is recorded only after its dummy verification
/// returned, and `password.rs`'
/// `tests::the_dummy_hash_costs_what_a_users_hash_costs` shows the dummy
/// hash has the cost of a user's.
#[tokio::test]
async fn unknown_email_gets_the_same_answer_after_the_same_work() {
    let app = spawn_app().await;
    app.register("rosa").await;
    const PAIRS: usize = 3;
    for _ in 0..PAIRS {
        let known = app.login("rosa", "wrong-password-y").await;
        let unknown = app.login("nobody", "wrong-password-y").await;
        known.assert_problem(401);
        unknown.assert_problem(401);
        for member in ["type", "title", "status", "detail"] {
            assert_eq!(known.body[member], unknown.body[member], "{member}");
        }
        assert_eq!(known.header("retry-after"), unknown.header("retry-after"));
    }
    let attempts: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT user_id IS NULL, password_checked FROM auth.login_attempts ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    // Per pair, one checked failure of rosa's and one anonymous attempt
    // recorded after its dummy verification (registration checks nothing).
    let anonymous = attempts.iter().filter(|(anon, _)| *anon).count();
    let checked = attempts
        .iter()
        .filter(|(anon, checked)| !anon && *checked)
        .count();
    assert_eq!(anonymous, PAIRS);
    assert_eq!(checked, PAIRS);
    app.finish().await;
}
