//! Connecting a Gmail account: the consent URL with PKCE and a single-use
//! state that names the user, then the browser's return with the code.

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, AccountRow, SealedTokens};
use crate::service::MailCore;

/// The associated data of a sealed PKCE verifier: its connect's state hash.
fn verifier_context(state_sha256: &[u8]) -> Vec<u8> {
    [b"pkce:".as_slice(), state_sha256].concat()
}

impl MailCore {
    /// Google's consent URL for a new account of `user_id`, and when the
    /// link stops working.
    pub async fn start_connect(
        &self,
        user_id: Uuid,
        login_hint: Option<&str>,
    ) -> Result<(String, chrono::DateTime<Utc>)> {
        let (google, keys) = self.configured()?;
        let authorization = google.oauth.authorization(login_hint);
        let state_sha256 = Sha256::digest(authorization.state.as_bytes()).to_vec();
        let verifier = keys.seal(
            authorization.pkce_verifier.as_bytes(),
            &verifier_context(&state_sha256),
        );
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.connect_ttl).unwrap_or(chrono::Duration::minutes(10));
        repo::insert_oauth_session(
            &self.pool,
            &state_sha256,
            user_id,
            &verifier.bytes,
            &verifier.key_id,
            expires_at,
        )
        .await?;
        Ok((authorization.url, expires_at))
    }

    /// Google sent the browser back: the state must be known, unused and
    /// unexpired; the code is exchanged (with the PKCE verifier) for
    /// tokens, which are stored sealed, and the first sync is queued.
    pub async fn complete_connect(
        &self,
        state: &str,
        code: &str,
        error: &str,
    ) -> Result<AccountRow> {
        let (google, keys) = self.configured()?;
        if state.is_empty() {
            return Err(MailError::BadState("missing its state"));
        }
        let state_sha256 = Sha256::digest(state.as_bytes()).to_vec();
        let session = repo::take_oauth_session(&self.pool, &state_sha256)
            .await?
            .ok_or(MailError::BadState("unknown"))?;
        if session.used_at.is_some() {
            return Err(MailError::BadState("already used"));
        }
        if session.expires_at < Utc::now() {
            return Err(MailError::BadState("expired"));
        }
        if !error.is_empty() {
            return Err(MailError::Connect(format!("Google answered {error:?}")));
        }
        if code.is_empty() {
            return Err(MailError::Connect("no authorization code".into()));
        }
        let verifier = keys.open_string(
            &session.key_id,
            &session.pkce_verifier,
            &verifier_context(&state_sha256),
        )?;
        let tokens = google
            .oauth
            .exchange_code(code, &verifier)
            .await
            .map_err(|e| MailError::Connect(e.to_string()))?;
        if !tokens.has_scope(pai_gmail::GMAIL_READONLY_SCOPE) && !tokens.scope.is_empty() {
            return Err(MailError::Connect(
                "Google did not grant read access to Gmail".into(),
            ));
        }
        let profile = google
            .gmail
            .profile(&tokens.access_token)
            .await
            .map_err(|e| MailError::Gmail(e.to_string()))?;
        let address = profile.email_address.to_lowercase();
        let (access, refresh) = self.seal_tokens(keys, session.user_id, &address, &tokens)?;
        let id = repo::upsert_account(
            &self.pool,
            Uuid::new_v4(),
            session.user_id,
            &address,
            &SealedTokens {
                access_token: &access.bytes,
                refresh_token: &refresh.bytes,
                key_id: &access.key_id,
                expires_at: tokens.expires_at,
                scope: &tokens.scope.join(" "),
            },
        )
        .await?;
        self.enqueue_sync(id, session.user_id).await?;
        tracing::info!(account_id = %id, user_id = %session.user_id, "gmail account connected");
        self.account(session.user_id, id).await
    }
}
