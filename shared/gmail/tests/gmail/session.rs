//! A `Session` over the fake: refresh on 401 or expiry, backoff on 429 and
//! 503, and `ReauthRequired` once the grant is gone.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::Utc;
use pai_gmail::{GmailError, Session, SessionError};

use crate::{OWNER, connect, quick_backoff, spawn_google};

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn a_401_refreshes_once_and_the_call_succeeds() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let session = Session::new(google.oauth.clone(), tokens.clone()).with_backoff(quick_backoff(3));
    google.fake.expire_access_tokens();
    google.fake.reset_counters();

    let gmail = &google.gmail;
    // The call's future can go to `tokio::spawn`.
    let profile = assert_send(session.call(|token| gmail.profile(token))).await?;
    assert_eq!(profile.email_address, OWNER);
    assert_eq!(google.fake.count("oauth.token"), 1);
    assert_eq!(google.fake.count("users.getProfile"), 2);

    let refreshed = session.take_refreshed().expect("new tokens to store");
    assert_ne!(refreshed.access_token, tokens.access_token);
    assert_eq!(refreshed.refresh_token, tokens.refresh_token);
    assert!(session.take_refreshed().is_none(), "handed over once");

    session.call(|token| gmail.profile(token)).await?;
    assert_eq!(
        google.fake.count("oauth.token"),
        1,
        "the new token is reused"
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_401s_cost_one_refresh() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let session = Session::new(google.oauth.clone(), tokens).with_backoff(quick_backoff(3));
    google.fake.expire_access_tokens();
    google.fake.reset_counters();
    let gmail = &google.gmail;
    let ids = google.fake.message_ids(OWNER);
    let calls = ids
        .iter()
        .take(8)
        .map(|id| session.call(|token| gmail.get_raw(token, id)));
    for result in futures::future::join_all(calls).await {
        result?;
    }
    assert_eq!(google.fake.count("oauth.token"), 1);
    Ok(())
}

#[tokio::test]
async fn an_expired_token_is_refreshed_before_the_call() -> Result<()> {
    let google = spawn_google().await?;
    let mut tokens = connect(&google).await?;
    tokens.expires_at = Utc::now() - chrono::Duration::seconds(1);
    let session = Session::new(google.oauth.clone(), tokens).with_backoff(quick_backoff(3));
    google.fake.reset_counters();
    let gmail = &google.gmail;
    session.call(|token| gmail.profile(token)).await?;
    assert_eq!(google.fake.count("oauth.token"), 1);
    assert_eq!(
        google.fake.count("users.getProfile"),
        1,
        "no call with the dead token"
    );
    assert!(session.tokens().expires_at > Utc::now());
    Ok(())
}

#[tokio::test]
async fn rate_limits_and_outages_back_off_then_succeed() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let session = Session::new(google.oauth.clone(), tokens).with_backoff(quick_backoff(4));
    let gmail = &google.gmail;
    let id = google.fake.message_ids(OWNER).remove(0);
    google.fake.reset_counters();

    google.fake.fail_next(2, 429);
    let started = Instant::now();
    let message = session.call(|token| gmail.get_raw(token, &id)).await?;
    assert_eq!(message.id, id);
    assert_eq!(google.fake.count("users.messages.get"), 3);
    assert!(started.elapsed() < Duration::from_secs(2));

    google.fake.fail_next(1, 503);
    session.call(|token| gmail.get_raw(token, &id)).await?;
    assert_eq!(google.fake.count("users.messages.get"), 5);
    assert_eq!(
        google.fake.count("oauth.token"),
        0,
        "no refresh for a 429 or 503"
    );
    assert!(session.take_refreshed().is_none());
    Ok(())
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_not_found_is_not_retried() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let session = Session::new(google.oauth.clone(), tokens).with_backoff(quick_backoff(3));
    let gmail = &google.gmail;
    google.fake.reset_counters();

    google.fake.fail_next(10, 503);
    let result = session.call(|token| gmail.profile(token)).await;
    assert!(
        matches!(result, Err(SessionError::Gmail(GmailError::Server(503)))),
        "{result:?}"
    );
    assert_eq!(google.fake.count("users.getProfile"), 3);
    google.fake.fail_next(0, 503);

    let result = session
        .call(|token| gmail.get_raw(token, "1000000000000000"))
        .await;
    assert!(
        matches!(result, Err(SessionError::Gmail(GmailError::NotFound))),
        "{result:?}"
    );
    assert_eq!(google.fake.count("users.messages.get"), 1);
    Ok(())
}

#[tokio::test]
async fn a_revoked_grant_is_reauth_required() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let session = Session::new(google.oauth.clone(), tokens).with_backoff(quick_backoff(3));
    // As if the user removed pai's access in their Google account.
    assert_eq!(google.fake.revoke_account(OWNER), 1);
    let gmail = &google.gmail;
    let result = session.call(|token| gmail.profile(token)).await;
    assert!(
        matches!(result, Err(SessionError::ReauthRequired { .. })),
        "{result:?}"
    );
    assert!(session.take_refreshed().is_none());

    let mut without = connect(&google).await?;
    without.refresh_token = None;
    without.expires_at = Utc::now();
    let session = Session::new(google.oauth.clone(), without);
    let result = session.call(|token| gmail.profile(token)).await;
    assert!(
        matches!(result, Err(SessionError::ReauthRequired { .. })),
        "{result:?}"
    );
    Ok(())
}
