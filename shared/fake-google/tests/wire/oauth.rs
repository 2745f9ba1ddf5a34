use pai_fake_google::{FakeGoogleConfig, GMAIL_READONLY_SCOPE};
use serde_json::Value;

use crate::helpers::{
    OWNER, REDIRECT_URI, authorize, client, connect, exchange, gmail, pkce, query_value, refresh,
    start,
};

#[tokio::test]
async fn pkce_s256_exchange_issues_google_shaped_tokens() {
    let fake = start().await;
    let location = authorize(&fake, &[]).await;
    assert!(location.as_str().starts_with(REDIRECT_URI));
    assert_eq!(
        query_value(&location, "state").as_deref(),
        Some("state-123")
    );
    assert_eq!(
        query_value(&location, "scope").as_deref(),
        Some(GMAIL_READONLY_SCOPE)
    );
    let code = query_value(&location, "code").expect("a code");
    assert!(code.starts_with("4/0A"));

    let response = exchange(&fake, &code, &pkce().0).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["access_token"]
            .as_str()
            .expect("access_token")
            .starts_with("ya29.")
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .starts_with("1//")
    );
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], GMAIL_READONLY_SCOPE);

    let request = fake.last_authorization().expect("recorded");
    assert_eq!(request.code_challenge_method.as_deref(), Some("S256"));
    assert_eq!(request.access_type.as_deref(), Some("offline"));
    assert_eq!(request.scope.as_deref(), Some(GMAIL_READONLY_SCOPE));
    let grants = fake.grants();
    assert_eq!(grants.len(), 1);
    assert!(grants[0].offline);
    assert_eq!(grants[0].email, OWNER);
}

#[tokio::test]
async fn a_wrong_or_missing_verifier_is_invalid_grant() {
    let fake = start().await;
    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    let response = exchange(
        &fake,
        &code,
        "not-the-verifier-not-the-verifier-not-the-verifier",
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());

    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    let config = FakeGoogleConfig::default();
    let response = client()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_code_is_single_use() {
    let fake = start().await;
    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    assert_eq!(exchange(&fake, &code, &pkce().0).await.status(), 200);
    let again = exchange(&fake, &code, &pkce().0).await;
    assert_eq!(again.status(), 400);
    assert_eq!(
        again.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn redirect_uri_and_client_secret_are_checked_and_basic_auth_accepted() {
    let fake = start().await;
    let config = FakeGoogleConfig::default();
    let (verifier, _) = pkce();
    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    let response = client()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );

    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    let response = client()
        .post(fake.token_url())
        .basic_auth(&config.client_id, Some("wrong-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_client"
    );

    // The oauth2 crate sends the client in HTTP Basic auth by default.
    let code = query_value(&authorize(&fake, &[]).await, "code").expect("code");
    let response = client()
        .post(fake.token_url())
        .basic_auth(&config.client_id, Some(&config.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let fake = start().await;
    let location = authorize(&fake, &[("access_type", "online")]).await;
    let code = query_value(&location, "code").expect("code");
    let body: Value = exchange(&fake, &code, &pkce().0)
        .await
        .json()
        .await
        .expect("json");
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none());
    assert!(!fake.grants()[0].offline);
}

#[tokio::test]
async fn refresh_then_revoke() {
    let fake = start().await;
    let tokens = connect(&fake).await;
    let refresh_token = tokens.refresh_token.expect("offline access");

    let response = refresh(&fake, &refresh_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body.get("refresh_token").is_none());
    let fresh = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_ne!(fresh, tokens.access_token);
    assert_eq!(gmail(&fake, &fresh, "profile", &[]).await.0, 200);

    let revoked = client()
        .post(fake.revoke_url())
        .form(&[("token", refresh_token.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        revoked.json::<Value>().await.expect("json"),
        serde_json::json!({})
    );
    let after = refresh(&fake, &refresh_token).await;
    assert_eq!(after.status(), 400);
    assert_eq!(
        after.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    assert_eq!(gmail(&fake, &fresh, "profile", &[]).await.0, 401);

    let unknown = client()
        .post(fake.revoke_url())
        .form(&[("token", "1//unknown")])
        .send()
        .await
        .expect("revoke");
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<Value>().await.expect("json")["error"],
        "invalid_token"
    );
}

#[tokio::test]
async fn a_revoked_account_refuses_refresh() {
    let fake = start().await;
    let tokens = connect(&fake).await;
    let refresh_token = tokens.refresh_token.expect("offline");
    assert!(fake.revoke_refresh_token(&refresh_token));
    let body: Value = refresh(&fake, &refresh_token)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
}

#[tokio::test]
async fn declined_consent_redirects_with_access_denied() {
    let fake = start().await;
    fake.deny_next_authorization();
    let location = authorize(&fake, &[]).await;
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_value(&location, "state").as_deref(),
        Some("state-123")
    );
    assert!(query_value(&location, "code").is_none());
}

#[tokio::test]
async fn an_unknown_client_gets_an_error_page() {
    let fake = start().await;
    let response = client()
        .get(fake.auth_url())
        .query(&[
            ("client_id", "someone-else"),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
        ])
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), 401);
}
