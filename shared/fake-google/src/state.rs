//! The fake's state: configuration, mailboxes, OAuth grants and test knobs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::mailbox::Mailbox;

/// The fake's settings.
#[derive(Debug, Clone)]
pub struct FakeGoogleConfig {
    /// The one OAuth client the fake knows.
    pub client_id: String,
    pub client_secret: String,
    /// How long an issued access token stays valid (Google: 3599 s).
    pub access_token_lifetime: Duration,
}

impl Default for FakeGoogleConfig {
    fn default() -> Self {
        Self {
            client_id: "pai-test-client.apps.googleusercontent.com".to_owned(),
            client_secret: "GOCSPX-pai-test-secret".to_owned(),
            access_token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// The fake before it serves: configuration and mailboxes by address.
#[derive(Debug, Clone, Default)]
pub struct FakeGoogle {
    pub config: FakeGoogleConfig,
    pub mailboxes: BTreeMap<String, Mailbox>,
    /// The account the consent screen grants when no `login_hint` names one.
    pub default_account: Option<String>,
}

impl FakeGoogle {
    /// Returns a fake with the given settings and no mailbox.
    pub fn new(config: FakeGoogleConfig) -> Self {
        Self {
            config,
            mailboxes: BTreeMap::new(),
            default_account: None,
        }
    }

    /// Adds a mailbox for an address; the first one added becomes the
    /// default account.
    pub fn with_mailbox(mut self, email: impl Into<String>, mut mailbox: Mailbox) -> Self {
        let email = email.into();
        mailbox.set_id_seed(&email);
        self.default_account.get_or_insert_with(|| email.clone());
        self.mailboxes.insert(email, mailbox);
        self
    }
}

/// The parameters of one request to the authorization endpoint, as sent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub access_type: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// Every query parameter, the ones above included.
    pub parameters: BTreeMap<String, String>,
}

/// What one consent granted, for tests to assert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantInfo {
    pub email: String,
    pub client_id: String,
    pub scope: String,
    /// Whether `access_type=offline` was asked (a refresh token was issued).
    pub offline: bool,
    pub refresh_token: Option<String>,
    pub revoked: bool,
}

#[derive(Debug)]
pub(crate) struct PendingCode {
    pub request: AuthorizationRequest,
    pub email: String,
    pub used: bool,
    pub expires_at: Instant,
}

#[derive(Debug)]
pub(crate) struct AccessToken {
    pub grant: usize,
    pub expires_at: Instant,
}

/// The fake's mutable state, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub mailboxes: BTreeMap<String, Mailbox>,
    pub default_account: Option<String>,
    pub codes: BTreeMap<String, PendingCode>,
    pub grants: Vec<GrantInfo>,
    pub access_tokens: BTreeMap<String, AccessToken>,
    pub last_authorization: Option<AuthorizationRequest>,
    pub deny_next_authorization: bool,
    /// Gmail calls still to pass before `fail_next` starts failing them.
    pub pass_first: u32,
    /// Gmail calls still to fail, and the status they fail with.
    pub fail_next: u32,
    pub fail_status: u16,
    /// How long each Gmail call waits before it is answered.
    pub latency: Duration,
    pub counters: BTreeMap<String, u64>,
}

/// State shared by the handlers and the test handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: FakeGoogleConfig,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(fake: FakeGoogle) -> Arc<Self> {
        Arc::new(Self {
            config: fake.config,
            inner: Mutex::new(Inner {
                mailboxes: fake.mailboxes,
                default_account: fake.default_account,
                fail_status: 429,
                ..Inner::default()
            }),
        })
    }

    /// Locks the state; a panic in another holder does not poison the fake.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    pub fn count(&mut self, endpoint: &str) {
        *self.counters.entry(endpoint.to_owned()).or_default() += 1;
    }
}

/// Returns a random token of `length` alphanumeric characters after `prefix`.
pub(crate) fn random_token(prefix: &str, length: usize) -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}
