//! The mail-sync core: accounts, tokens, mail reads, removal and erasure.
//! Connecting is in `connect.rs`, syncing in `sync.rs`, indexing in
//! `ingest.rs`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use pai_common::shards::Shards;
use pai_gmail::{Backoff, GmailClient, OAuthClient, Tokens};
use pai_proto::v1::DeleteSourceRequest;
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::KeyRing;
use crate::error::{MailError, Result};
use crate::repo::{self, AccountRow, AttachmentRow, EmailFilter, EmailRow, SealedTokens};
use crate::{Extractor, MailSettings};

pub type SearchClient = pai_common::shards::SearchInternal;

/// Sources removed from search in one call (one index commit).
const UNINDEX_BATCH: usize = 500;

/// The source kind of mail in search (emails and their attachments).
pub const SOURCE_KIND: &str = "email";

/// The routing key of sync jobs and of ingest jobs.
pub const SYNC_ROUTING_KEY: &str = pai_common::amqp::MAIL_SYNC.routing_key;
pub const INGEST_ROUTING_KEY: &str = pai_common::amqp::MAIL_INGEST.routing_key;

/// Google's side, when configured.
pub struct Google {
    pub oauth: OAuthClient,
    pub gmail: GmailClient,
}

pub struct MailCore {
    pub(crate) pool: PgPool,
    pub(crate) google: Option<Google>,
    pub(crate) keys: Option<KeyRing>,
    /// A client per search shard.
    pub(crate) search: Shards<SearchClient>,
    pub(crate) connect_ttl: std::time::Duration,
    pub(crate) backoff: Backoff,
    pub(crate) attachments_path: PathBuf,
    pub(crate) parse_limits: pai_email::Limits,
    pub(crate) extractor: Extractor,
}

impl MailCore {
    pub fn new(
        settings: &MailSettings,
        pool: PgPool,
        search: Shards<SearchClient>,
    ) -> anyhow::Result<Self> {
        let google = match &settings.gmail {
            Some(gmail) => Some(Google {
                oauth: OAuthClient::new(
                    &gmail.client_id,
                    &gmail.client_secret,
                    &gmail.redirect_uri,
                    &gmail.endpoints,
                )?,
                gmail: GmailClient::new(reqwest::Client::new(), &gmail.endpoints.api_base_url)?,
            }),
            None => None,
        };
        Ok(Self {
            pool,
            google,
            keys: settings.keys.clone(),
            search,
            connect_ttl: settings.connect_ttl,
            backoff: settings.backoff,
            attachments_path: settings.attachments_path.clone(),
            parse_limits: settings.parse_limits,
            extractor: settings.extractor.clone(),
        })
    }

    /// Google and the token keys, or why mail cannot be connected.
    pub(crate) fn configured(&self) -> Result<(&Google, &KeyRing)> {
        match (&self.google, &self.keys) {
            (Some(google), Some(keys)) => Ok((google, keys)),
            _ => Err(MailError::NotConfigured),
        }
    }

    /// The associated data a token is sealed with: its account (user and
    /// address) and which token, so a ciphertext moved elsewhere won't open.
    pub(crate) fn token_context(user_id: Uuid, email_address: &str, which: &str) -> Vec<u8> {
        crate::crypto::token_context(user_id, email_address, which)
    }

    pub(crate) fn seal_tokens(
        &self,
        keys: &KeyRing,
        user_id: Uuid,
        email_address: &str,
        tokens: &Tokens,
    ) -> Result<(crate::crypto::Sealed, crate::crypto::Sealed)> {
        let refresh = tokens
            .refresh_token
            .as_deref()
            .ok_or_else(|| MailError::Connect("Google granted no offline access".into()))?;
        Ok((
            keys.seal(
                tokens.access_token.as_bytes(),
                &Self::token_context(user_id, email_address, "access"),
            ),
            keys.seal(
                refresh.as_bytes(),
                &Self::token_context(user_id, email_address, "refresh"),
            ),
        ))
    }

    /// Stores tokens a refresh replaced, sealed under the current key.
    pub(crate) async fn store_tokens(&self, account: &AccountRow, tokens: &Tokens) -> Result<()> {
        let (_, keys) = self.configured()?;
        let (access, refresh) =
            self.seal_tokens(keys, account.user_id, &account.email_address, tokens)?;
        repo::update_tokens(
            &self.pool,
            account.id,
            &SealedTokens {
                access_token: &access.bytes,
                refresh_token: &refresh.bytes,
                key_id: &access.key_id,
                expires_at: tokens.expires_at,
                scope: "",
            },
        )
        .await
    }

    /// The account's tokens, opened.
    pub(crate) fn open_tokens(&self, account: &AccountRow) -> Result<Tokens> {
        let (_, keys) = self.configured()?;
        let open = |bytes: &[u8], which| {
            keys.open_string(
                &account.key_id,
                bytes,
                &Self::token_context(account.user_id, &account.email_address, which),
            )
        };
        Ok(Tokens {
            access_token: open(&account.access_token, "access")?,
            refresh_token: Some(open(&account.refresh_token, "refresh")?),
            expires_at: account.token_expires_at,
            scope: Vec::new(),
        })
    }

    pub async fn list_accounts(&self, user_id: Uuid) -> Result<Vec<AccountRow>> {
        repo::list_accounts(&self.pool, user_id).await
    }

    pub async fn account(&self, user_id: Uuid, id: Uuid) -> Result<AccountRow> {
        repo::get_account(&self.pool, user_id, id)
            .await?
            .ok_or(MailError::NotFound("mail account"))
    }

    /// Queues a sync of the caller's account now (not while mail is being
    /// imported into it).
    pub async fn sync_now(&self, user_id: Uuid, id: Uuid) -> Result<AccountRow> {
        let account = self.account(user_id, id).await?;
        if account.state == "reauth_required" {
            return Err(MailError::ReauthRequired);
        }
        if account.importing {
            return Err(MailError::Importing);
        }
        self.enqueue_sync(account.id, account.user_id).await?;
        Ok(account)
    }

    pub(crate) async fn enqueue_sync(&self, account_id: Uuid, user_id: Uuid) -> Result<()> {
        sqlx::query("INSERT INTO mail.outbox (routing_key, payload) VALUES ($1, $2)")
            .bind(SYNC_ROUTING_KEY)
            .bind(serde_json::json!({ "account_id": account_id, "user_id": user_id }))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes an account: revokes its token at Google, deletes its mail,
    /// attachments and tokens, and its entries in search.
    pub async fn remove_account(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        let (account, sources) = repo::delete_account(&self.pool, user_id, id)
            .await?
            .ok_or(MailError::NotFound("mail account"))?;
        self.revoke(&account).await;
        self.unindex(user_id, &sources).await?;
        self.delete_files(user_id, &sources).await;
        tracing::info!(account_id = %id, %user_id, emails = sources.len(), "mail account removed");
        Ok(())
    }

    /// Revokes an account's refresh token at Google; a token Google no
    /// longer knows is already what we want.
    pub(crate) async fn revoke(&self, account: &AccountRow) {
        let Ok((google, _)) = self.configured() else {
            return;
        };
        let Ok(tokens) = self.open_tokens(account) else {
            return;
        };
        let token = tokens.refresh_token.unwrap_or(tokens.access_token);
        if let Err(err) = google.oauth.revoke(&token).await {
            tracing::info!(account_id = %account.id, error = %err, "revoking the Google token failed");
        }
    }

    /// Removes sources (emails, attachments) of a user from search, a
    /// batch per index commit.
    pub(crate) async fn unindex(&self, user_id: Uuid, source_ids: &[Uuid]) -> Result<()> {
        for batch in source_ids.chunks(UNINDEX_BATCH) {
            let Some((first, rest)) = batch.split_first() else {
                continue;
            };
            self.search
                .for_user(user_id)
                .delete_source(DeleteSourceRequest {
                    user_id: user_id.to_string(),
                    source_kind: SOURCE_KIND.to_owned(),
                    source_id: first.to_string(),
                    more_source_ids: rest.iter().map(Uuid::to_string).collect(),
                })
                .await
                .map_err(|status| MailError::Search(status.message().to_owned()))?;
        }
        Ok(())
    }

    /// Where a kept attachment lives.
    pub(crate) fn attachment_path(&self, user_id: Uuid, attachment_id: Uuid) -> PathBuf {
        self.attachments_path
            .join(user_id.to_string())
            .join(format!("{attachment_id}.pdf"))
    }

    async fn delete_files(&self, user_id: Uuid, ids: &[Uuid]) {
        for id in ids {
            let path = self.attachment_path(user_id, *id);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "could not delete an attachment")
                }
            }
        }
    }

    pub async fn list_emails(
        &self,
        user_id: Uuid,
        filter: &EmailFilter,
        cursor: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<EmailRow>> {
        repo::list_emails(
            &self.pool,
            user_id,
            filter,
            cursor,
            i64::from(limit.clamp(1, 200)),
        )
        .await
    }

    pub async fn email(&self, user_id: Uuid, id: Uuid) -> Result<(EmailRow, Vec<AttachmentRow>)> {
        let email = repo::get_email(&self.pool, user_id, id)
            .await?
            .ok_or(MailError::NotFound("email"))?;
        let attachments = repo::attachments(&self.pool, user_id, &[email.id]).await?;
        Ok((email, attachments))
    }

    pub async fn thread(
        &self,
        user_id: Uuid,
        thread_id: &str,
    ) -> Result<(Vec<EmailRow>, Vec<AttachmentRow>)> {
        let emails = repo::thread(&self.pool, user_id, thread_id).await?;
        if emails.is_empty() {
            return Err(MailError::NotFound("thread"));
        }
        let ids: Vec<Uuid> = emails.iter().map(|e| e.id).collect();
        let attachments = repo::attachments(&self.pool, user_id, &ids).await?;
        Ok((emails, attachments))
    }

    /// Erases a deleted user's mail: rows (refusing any later insert),
    /// tokens revoked at Google, kept attachments. Search erases its own.
    pub async fn erase_user(&self, user_id: Uuid) -> Result<u64> {
        let accounts = repo::erase_user(&self.pool, user_id).await?;
        for account in &accounts {
            self.revoke(account).await;
        }
        let folder = self.attachments_path.join(user_id.to_string());
        match tokio::fs::remove_dir_all(&folder).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(MailError::Database(format!(
                    "removing {}: {err}",
                    folder.display()
                )));
            }
        }
        Ok(accounts.len() as u64)
    }
}
