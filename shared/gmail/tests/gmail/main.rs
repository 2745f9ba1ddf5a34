//! pai-gmail against the fake Google (`pai-fake-google`), which speaks
//! Google's real wire format and counts every call.

mod api;
mod connect;
mod session;

use std::time::Duration;

use anyhow::{Context, Result};
use pai_fake_google::{FakeGoogle, FakeGoogleConfig, FakeGoogleHandle, Mailbox};
use pai_gmail::{Backoff, GmailClient, GoogleEndpoints, OAuthClient, Tokens};

pub const OWNER: &str = "owner@example.com";
pub const REDIRECT_URI: &str = "http://localhost:8000/api/gmail/callback";

/// A running fake with the dev corpus as `OWNER`'s mailbox, and clients
/// pointed at it.
pub struct Google {
    pub fake: FakeGoogleHandle,
    pub oauth: OAuthClient,
    pub gmail: GmailClient,
    /// The corpus as loaded, to compare bytes with.
    pub corpus: Mailbox,
}

pub fn corpus() -> Result<Mailbox> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/email/dev");
    Mailbox::from_eml_dir(dir).context("reading the dev corpus")
}

pub async fn spawn_google() -> Result<Google> {
    let config = FakeGoogleConfig::default();
    let corpus = corpus()?;
    let fake = FakeGoogle::new(config.clone()).with_mailbox(OWNER, corpus.clone());
    let (_, fake) = pai_fake_google::spawn(fake).await;
    let endpoints = GoogleEndpoints {
        auth_url: fake.auth_url(),
        token_url: fake.token_url(),
        revoke_url: fake.revoke_url(),
        api_base_url: fake.base_url(),
    };
    let oauth = OAuthClient::new(
        &config.client_id,
        &config.client_secret,
        REDIRECT_URI,
        &endpoints,
    )?;
    let gmail = GmailClient::new(reqwest::Client::new(), &endpoints.api_base_url)?;
    Ok(Google {
        fake,
        oauth,
        gmail,
        corpus,
    })
}

/// What the browser brings back to the callback.
pub struct Callback {
    pub code: String,
    pub state: String,
}

/// Plays the browser: opens the consent URL and reads `code` and `state`
/// from the fake's 302 without following it.
pub async fn consent(url: &str) -> Result<Callback> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = browser.get(url).send().await?;
    anyhow::ensure!(
        response.status() == 302,
        "consent answered {}",
        response.status()
    );
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .context("no Location")?
        .to_str()?;
    let location = reqwest::Url::parse(location)?;
    anyhow::ensure!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    let pairs: std::collections::BTreeMap<String, String> =
        location.query_pairs().into_owned().collect();
    Ok(Callback {
        code: pairs.get("code").cloned().context("no code")?,
        state: pairs.get("state").cloned().context("no state")?,
    })
}

/// Connects `OWNER` the whole way and returns the tokens.
pub async fn connect(google: &Google) -> Result<Tokens> {
    let authorization = google.oauth.authorization(Some(OWNER));
    let callback = consent(&authorization.url).await?;
    Ok(google
        .oauth
        .exchange_code(&callback.code, &authorization.pkce_verifier)
        .await?)
}

/// Waits of a millisecond or two, so retries cost the tests nothing.
pub fn quick_backoff(max_attempts: u32) -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        max_attempts,
    }
}
