//! Lockout after repeated failures, and no account enumeration.

use std::time::{Duration, Instant};

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

#[tokio::test]
async fn unknown_email_gets_the_same_answer_in_similar_time() {
    let app = spawn_app().await;
    app.register("rosa").await;
    // Warm up both paths once.
    app.login("rosa", "wrong-password-x").await;
    app.login("nobody", "wrong-password-x").await;

    // Medians of several interleaved pairs: a burst of load elsewhere on
    // the machine slows one request, not the median.
    const PAIRS: usize = 7;
    let mut known = Vec::with_capacity(PAIRS);
    let mut unknown = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let started = Instant::now();
        let k = app.login("rosa", "wrong-password-y").await;
        known.push(started.elapsed());
        let started = Instant::now();
        let u = app.login("nobody", "wrong-password-y").await;
        unknown.push(started.elapsed());
        k.assert_problem(401);
        u.assert_problem(401);
        assert_eq!(k.body["detail"], u.body["detail"]);
        assert_eq!(k.body["title"], u.body["title"]);
        assert_eq!(k.body["type"], u.body["type"]);
        // Reset so the known account never locks during the loop.
        sqlx::query("UPDATE auth.users SET failed_logins = 0")
            .execute(&app.db)
            .await
            .unwrap();
    }
    // Both verify one argon2id hash: neither is several times faster.
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let ratio = median(&mut unknown).as_secs_f64() / median(&mut known).as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:?} unknown {unknown:?}"
    );
    let anonymous: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth.login_attempts WHERE user_id IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(anonymous, 1 + PAIRS as i64);
    app.finish().await;
}
