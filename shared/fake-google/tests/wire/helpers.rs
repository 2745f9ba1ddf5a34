use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pai_fake_google::{
    FakeGoogle, FakeGoogleConfig, FakeGoogleHandle, GMAIL_READONLY_SCOPE, Mailbox,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const OWNER: &str = "owner@example.com";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/api/gmail/callback";

pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/email/dev")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client")
}

/// Starts a fake with the dev corpus as `owner@example.com`.
pub async fn start() -> FakeGoogleHandle {
    let mailbox = Mailbox::from_eml_dir(corpus_dir()).expect("the dev corpus");
    let fake = FakeGoogle::new(FakeGoogleConfig::default()).with_mailbox(OWNER, mailbox);
    pai_fake_google::spawn(fake).await.1
}

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

/// Returns (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Runs the consent redirect and returns the `code` (or panics with the location).
pub async fn authorize(fake: &FakeGoogleHandle, extra: &[(&str, &str)]) -> reqwest::Url {
    let (_, challenge) = pkce();
    let config = FakeGoogleConfig::default();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", GMAIL_READONLY_SCOPE),
        ("state", "state-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ];
    query.retain(|(name, _)| !extra.iter().any(|(other, _)| other == name));
    query.extend_from_slice(extra);
    let response = client()
        .get(fake.auth_url())
        .query(&query)
        .send()
        .await
        .expect("authorize");
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii location")
        .to_owned();
    reqwest::Url::parse(&location).expect("a URL")
}

pub fn query_value(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

pub async fn exchange(fake: &FakeGoogleHandle, code: &str, verifier: &str) -> reqwest::Response {
    let config = FakeGoogleConfig::default();
    client()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token")
}

/// The whole consent flow; returns the tokens.
pub async fn connect(fake: &FakeGoogleHandle) -> Tokens {
    let location = authorize(fake, &[]).await;
    let code = query_value(&location, "code").expect("a code");
    let body: Value = exchange(fake, &code, &pkce().0)
        .await
        .json()
        .await
        .expect("json");
    Tokens {
        access_token: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh_token: body["refresh_token"].as_str().map(str::to_owned),
    }
}

pub async fn refresh(fake: &FakeGoogleHandle, refresh_token: &str) -> reqwest::Response {
    let config = FakeGoogleConfig::default();
    client()
        .post(fake.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("refresh")
}

/// GET on the Gmail API with a bearer token; returns (status, JSON body).
pub async fn gmail(
    fake: &FakeGoogleHandle,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let response = client()
        .get(format!("{}/users/me/{path}", fake.gmail_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("gmail call");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}
