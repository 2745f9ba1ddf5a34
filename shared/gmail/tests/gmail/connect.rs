//! The consent flow: what the consent URL asks for, the code exchange,
//! refresh and revoke.

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use pai_gmail::{GMAIL_READONLY_SCOPE, OAuthClient, OAuthError};
use sha2::{Digest, Sha256};

use crate::{OWNER, REDIRECT_URI, connect, consent, spawn_google};

#[tokio::test]
async fn consent_asks_for_pkce_s256_offline_readonly_and_the_code_exchanges() -> Result<()> {
    let google = spawn_google().await?;
    let authorization = google.oauth.authorization(Some(OWNER));
    let callback = consent(&authorization.url).await?;
    assert_eq!(callback.state, authorization.state);

    let sent = google.fake.last_authorization().expect("an authorization");
    assert_eq!(sent.response_type.as_deref(), Some("code"));
    assert_eq!(sent.code_challenge_method.as_deref(), Some("S256"));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(authorization.pkce_verifier.as_bytes()));
    assert_eq!(sent.code_challenge.as_deref(), Some(challenge.as_str()));
    assert_eq!(sent.access_type.as_deref(), Some("offline"));
    assert_eq!(sent.prompt.as_deref(), Some("consent"));
    assert_eq!(sent.scope.as_deref(), Some(GMAIL_READONLY_SCOPE));
    assert_eq!(sent.login_hint.as_deref(), Some(OWNER));
    assert_eq!(sent.redirect_uri.as_deref(), Some(REDIRECT_URI));
    // At least 128 random bits, URL-safe, and fresh each time.
    assert!(authorization.state.len() >= 22, "{}", authorization.state);
    assert!(
        authorization
            .state
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    );
    assert_ne!(google.oauth.authorization(None).state, authorization.state);

    let before = Utc::now();
    let tokens = google
        .oauth
        .exchange_code(&callback.code, &authorization.pkce_verifier)
        .await?;
    assert!(tokens.refresh_token.is_some());
    assert!(tokens.has_scope(GMAIL_READONLY_SCOPE));
    let lifetime = tokens.expires_at - before;
    assert!(
        (3590..=3600).contains(&lifetime.num_seconds()),
        "{lifetime}"
    );
    let profile = google.gmail.profile(&tokens.access_token).await?;
    assert_eq!(profile.email_address, OWNER);

    // A code is single use.
    let reused = google
        .oauth
        .exchange_code(&callback.code, &authorization.pkce_verifier)
        .await;
    assert!(
        matches!(reused, Err(OAuthError::InvalidGrant { .. })),
        "{reused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_verifier_is_invalid_grant() -> Result<()> {
    let google = spawn_google().await?;
    let authorization = google.oauth.authorization(None);
    let callback = consent(&authorization.url).await?;
    let other = google.oauth.authorization(None);
    let result = google
        .oauth
        .exchange_code(&callback.code, &other.pkce_verifier)
        .await;
    assert!(
        matches!(result, Err(OAuthError::InvalidGrant { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_client_secret_is_rejected_not_invalid_grant() -> Result<()> {
    let google = spawn_google().await?;
    let endpoints = pai_gmail::GoogleEndpoints {
        auth_url: google.fake.auth_url(),
        token_url: google.fake.token_url(),
        revoke_url: google.fake.revoke_url(),
        api_base_url: google.fake.base_url(),
    };
    let config = pai_fake_google::FakeGoogleConfig::default();
    let wrong = OAuthClient::new(
        &config.client_id,
        "not-the-secret",
        REDIRECT_URI,
        &endpoints,
    )?;
    let authorization = wrong.authorization(None);
    let callback = consent(&authorization.url).await?;
    let result = wrong
        .exchange_code(&callback.code, &authorization.pkce_verifier)
        .await;
    match result {
        Err(OAuthError::Rejected { error, .. }) => assert_eq!(error, "invalid_client"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn refresh_gives_a_new_access_token_and_keeps_the_refresh_token() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let refresh_token = tokens.refresh_token.clone().expect("offline grant");
    google.fake.expire_access_tokens();
    let refreshed = google.oauth.refresh(&refresh_token).await?;
    assert_ne!(refreshed.access_token, tokens.access_token);
    // The fake, like Google, sends no refresh token on refresh.
    assert_eq!(
        refreshed.refresh_token.as_deref(),
        Some(refresh_token.as_str())
    );
    assert!(refreshed.has_scope(GMAIL_READONLY_SCOPE));
    google.gmail.profile(&refreshed.access_token).await?;
    Ok(())
}

#[tokio::test]
async fn revoke_ends_the_grant_and_refresh_becomes_invalid_grant() -> Result<()> {
    let google = spawn_google().await?;
    let tokens = connect(&google).await?;
    let refresh_token = tokens.refresh_token.clone().expect("offline grant");
    google.oauth.revoke(&refresh_token).await?;
    assert_eq!(google.fake.count("oauth.revoke"), 1);
    assert!(google.fake.grants().iter().all(|grant| grant.revoked));

    let result = google.oauth.refresh(&refresh_token).await;
    assert!(
        matches!(result, Err(OAuthError::InvalidGrant { .. })),
        "{result:?}"
    );
    let result = google.gmail.profile(&tokens.access_token).await;
    assert!(
        matches!(result, Err(pai_gmail::GmailError::Unauthorized)),
        "{result:?}"
    );

    // Revoking again: Google no longer knows the token.
    match google.oauth.revoke(&refresh_token).await {
        Err(OAuthError::Rejected { error, .. }) => assert_eq!(error, "invalid_token"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    Ok(())
}
