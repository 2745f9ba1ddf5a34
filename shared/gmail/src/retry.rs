//! Running Gmail calls the way Google asks clients to: exponential backoff
//! with full jitter on 429, 5xx and transport failures (honouring
//! `Retry-After`), and one token refresh when the access token expires or
//! Gmail answers 401. A [`Session`] holds one account's tokens while a sync
//! runs and hands refreshed ones back so the caller can store them.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use crate::api::GmailError;
use crate::oauth::{OAuthClient, OAuthError};
use crate::tokens::Tokens;

/// How early an access token is refreshed before its `expires_at`, so a
/// call does not start with a token that dies in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// When and how often to try a failing call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first wait; it doubles with each retry.
    pub base: Duration,
    /// The largest ceiling, however many retries.
    pub cap: Duration,
    /// Tries in all, the first included (1 = never retry).
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// Returns Google's suggested shape: waits growing from about a second
    /// to at most 32 s, six tries in all.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(1000),
            cap: Duration::from_secs(32),
            max_attempts: 6,
        }
    }
}

impl Backoff {
    /// Returns the wait before retry number `retry` (0 for the first): a
    /// uniform draw from zero to `min(cap, base · 2^retry)` ("full jitter",
    /// so many clients failing together do not retry together), or Google's
    /// `Retry-After` when that is longer.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2_u32.saturating_pow(retry))
            .min(self.cap);
        let jitter = Duration::from_nanos(
            rand::thread_rng().gen_range(0..=u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX)),
        );
        retry_after.map_or(jitter, |after| after.max(jitter))
    }

    /// Runs `op` until it succeeds, fails for good, or the tries run out;
    /// returns its last result.
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut retry = 0;
        loop {
            match op().await {
                Err(error) if error.is_retryable() && retry + 1 < self.max_attempts => {
                    let wait = self.delay(retry, error.retry_after());
                    tracing::debug!(retry, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                result => return result,
            }
        }
    }
}

/// An error that may go away if the call is tried again later.
pub trait Retryable: std::fmt::Display {
    /// Returns whether trying again may help.
    fn is_retryable(&self) -> bool;
    /// Returns how long the server asked the caller to wait, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retryable for GmailError {
    fn is_retryable(&self) -> bool {
        GmailError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        GmailError::retry_after(self)
    }
}

impl Retryable for OAuthError {
    fn is_retryable(&self) -> bool {
        OAuthError::is_retryable(self)
    }
}

/// Why a [`Session`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The refresh token is revoked or expired (or there is none): the
    /// account needs the user's consent again.
    #[error("the google account needs to be connected again: {reason}")]
    ReauthRequired { reason: String },
    /// The Gmail call failed for good or ran out of tries.
    #[error(transparent)]
    Gmail(#[from] GmailError),
    /// Refreshing failed for a reason other than the grant (outage,
    /// misconfigured client).
    #[error("refreshing the access token failed")]
    Refresh(#[source] OAuthError),
}

/// One account's tokens during a sync. Calls may run concurrently: the
/// first to meet an expired token refreshes it, the others wait and use the
/// new one.
#[derive(Debug)]
pub struct Session {
    oauth: OAuthClient,
    backoff: Backoff,
    state: Mutex<State>,
    /// Serialises refreshes so that one 401 storm costs one refresh.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    tokens: Tokens,
    /// Whether the tokens changed since the caller last took them.
    refreshed: bool,
}

impl Session {
    /// Returns a session over stored tokens with the default [`Backoff`].
    pub fn new(oauth: OAuthClient, tokens: Tokens) -> Self {
        Self {
            oauth,
            backoff: Backoff::default(),
            state: Mutex::new(State {
                tokens,
                refreshed: false,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns the session with another backoff policy (tests use
    /// millisecond waits).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Returns the current tokens.
    pub fn tokens(&self) -> Tokens {
        self.lock().tokens.clone()
    }

    /// Returns the tokens if a refresh replaced them since the last take, so
    /// the caller stores each new set once.
    pub fn take_refreshed(&self) -> Option<Tokens> {
        let mut state = self.lock();
        std::mem::take(&mut state.refreshed).then(|| state.tokens.clone())
    }

    /// Runs a Gmail call with the current access token: refreshes first if
    /// the token is (nearly) expired, refreshes once and tries again on
    /// 401, and backs off on 429, 5xx and transport failures.
    ///
    /// `op` gets the access token as an owned `String` (not `&str`) so the
    /// returned future stays `Send` for `tokio::spawn`: an `AsyncFnMut(&str)`
    /// bound trips rustc's "`Send` is not general enough".
    ///
    /// ```ignore
    /// let message = session.call(|token| client.get_raw(token, &id)).await?;
    /// ```
    pub async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, SessionError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, GmailError>>,
    {
        let mut refreshed = false;
        let mut retry = 0;
        loop {
            let token = self.fresh_access_token().await?;
            match op(token.clone()).await {
                Ok(value) => return Ok(value),
                Err(GmailError::Unauthorized) if !refreshed => {
                    tracing::debug!("gmail refused the access token; refreshing");
                    self.refresh_replacing(&token).await?;
                    refreshed = true;
                }
                Err(error) if error.is_retryable() && retry + 1 < self.backoff.max_attempts => {
                    let wait = self.backoff.delay(retry, error.retry_after());
                    tracing::debug!(retry, wait_ms = wait.as_millis() as u64, %error, "gmail call failed; backing off");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(error) => return Err(SessionError::Gmail(error)),
            }
        }
    }

    /// Refreshes the access token now, whatever its expiry.
    pub async fn refresh(&self) -> Result<(), SessionError> {
        let current = self.lock().tokens.access_token.clone();
        self.refresh_replacing(&current).await
    }

    /// Returns the access token, refreshed first when it expires soon.
    async fn fresh_access_token(&self) -> Result<String, SessionError> {
        let (token, expiring) = {
            let state = self.lock();
            let expiring = state.tokens.expires_within(EXPIRY_MARGIN, Utc::now());
            (state.tokens.access_token.clone(), expiring)
        };
        if !expiring {
            return Ok(token);
        }
        self.refresh_replacing(&token).await?;
        Ok(self.lock().tokens.access_token.clone())
    }

    /// Refreshes unless another call already replaced `stale` while this one
    /// waited for the lock.
    async fn refresh_replacing(&self, stale: &str) -> Result<(), SessionError> {
        let _refreshing = self.refreshing.lock().await;
        let refresh_token = {
            let state = self.lock();
            if state.tokens.access_token != stale {
                return Ok(());
            }
            state.tokens.refresh_token.clone()
        };
        let Some(refresh_token) = refresh_token else {
            return Err(SessionError::ReauthRequired {
                reason: "no refresh token was granted".to_owned(),
            });
        };
        let tokens = self
            .backoff
            .run(|| self.oauth.refresh(&refresh_token))
            .await
            .map_err(|error| match error {
                OAuthError::InvalidGrant { description } => SessionError::ReauthRequired {
                    reason: description,
                },
                other @ (OAuthError::Rejected { .. }
                | OAuthError::Server(_)
                | OAuthError::Transport(_)
                | OAuthError::Decode(_)
                | OAuthError::InvalidUrl { .. }) => SessionError::Refresh(other),
            })?;
        let mut state = self.lock();
        state.tokens = tokens;
        state.refreshed = true;
        Ok(())
    }

    /// Locks the state; a panic elsewhere leaves it consistent (each update
    /// is one assignment), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
            max_attempts: 5,
        };
        for _ in 0..200 {
            assert!(backoff.delay(0, None) <= Duration::from_millis(100));
            assert!(backoff.delay(1, None) <= Duration::from_millis(200));
            assert!(backoff.delay(9, None) <= Duration::from_millis(350));
            assert!(backoff.delay(40, None) <= Duration::from_millis(350));
        }
        let spread: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| backoff.delay(3, None)).collect();
        assert!(spread.len() > 10, "full jitter spreads the waits");
    }

    #[test]
    fn retry_after_is_honoured() {
        let backoff = Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_attempts: 3,
        };
        assert_eq!(
            backoff.delay(0, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn run_retries_only_what_may_pass() {
        let backoff = Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_attempts: 4,
        };
        let mut calls = 0;
        let result: Result<(), GmailError> = backoff
            .run(|| {
                calls += 1;
                std::future::ready(Err(GmailError::Server(503)))
            })
            .await;
        assert!(matches!(result, Err(GmailError::Server(503))));
        assert_eq!(calls, 4);

        let mut calls = 0;
        let result: Result<(), GmailError> = backoff
            .run(|| {
                calls += 1;
                std::future::ready(Err(GmailError::NotFound))
            })
            .await;
        assert!(matches!(result, Err(GmailError::NotFound)));
        assert_eq!(calls, 1);
    }
}
