//! Mail of an older install (`pai import-sqlite`): accounts with their
//! tokens sealed as a connect stores them, due for a full sync from Gmail,
//! and emails with their threads and PDF attachments, queued for search
//! like synced ones. Ids come from the importer, so a repeated call stores
//! nothing twice.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, NewAttachment, NewEmail, SealedTokens};
use crate::service::{INGEST_ROUTING_KEY, MailCore};
use crate::sync::write_file;

/// The provider id of an imported email: the old app kept no Gmail id, and
/// a full sync stores Gmail's messages under theirs.
pub const IMPORTED_PROVIDER_PREFIX: &str = "imported:";

pub struct ImportedAccount<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub email_address: &'a str,
    pub access_token: &'a str,
    pub refresh_token: &'a str,
    pub created_at: DateTime<Utc>,
}

pub struct ImportedAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

pub struct ImportedEmail {
    pub id: Uuid,
    pub thread_id: String,
    pub subject: String,
    pub text: String,
    /// Empty: classified by pai's rules.
    pub classification: String,
    pub created_at: DateTime<Utc>,
    pub attachments: Vec<ImportedAttachment>,
}

impl MailCore {
    /// Stores an imported account unless its id is there; returns whether
    /// it was stored. Its access token is taken as expired, so the first
    /// sync (due now) refreshes it; a refresh Google refuses marks the
    /// account `reauth_required`, as for any account.
    pub async fn import_account(&self, account: &ImportedAccount<'_>) -> Result<bool> {
        let keys = self.keys.as_ref().ok_or_else(|| {
            MailError::Invalid(
                "MAIL_TOKEN_ENCRYPTION_KEY is not set: imported tokens cannot be stored".into(),
            )
        })?;
        let address = account.email_address.trim().to_lowercase();
        if !address.contains('@') {
            return Err(MailError::Invalid(format!(
                "{address:?} is not an email address"
            )));
        }
        let access = keys.seal(
            account.access_token.as_bytes(),
            &Self::token_context(account.user_id, &address, "access"),
        );
        let refresh = keys.seal(
            account.refresh_token.as_bytes(),
            &Self::token_context(account.user_id, &address, "refresh"),
        );
        repo::insert_imported_account(
            &self.pool,
            account.id,
            account.user_id,
            &address,
            &SealedTokens {
                access_token: &access.bytes,
                refresh_token: &refresh.bytes,
                key_id: &access.key_id,
                expires_at: DateTime::<Utc>::UNIX_EPOCH,
                scope: pai_gmail::GMAIL_READONLY_SCOPE,
            },
            account.created_at,
        )
        .await
    }

    /// Stores the imported emails of `account_id` not stored yet, with
    /// their PDF attachments and ingest jobs, in one transaction; returns
    /// how many were stored.
    pub async fn import_emails(&self, account_id: Uuid, emails: Vec<ImportedEmail>) -> Result<u32> {
        let account = repo::account_for_sync(&self.pool, account_id)
            .await?
            .ok_or(MailError::NotFound("account"))?;
        let mut prepared = Vec::with_capacity(emails.len());
        for email in emails {
            prepared.push(self.prepare_imported(&account, email).await?);
        }
        let mut tx = self.pool.begin().await?;
        let mut created = 0;
        for (email, attachments) in &prepared {
            let job = serde_json::json!({ "user_id": account.user_id, "email_id": email.id });
            if repo::insert_email(&mut tx, email, attachments, &job, INGEST_ROUTING_KEY).await? {
                created += 1;
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn prepare_imported(
        &self,
        account: &repo::AccountRow,
        email: ImportedEmail,
    ) -> Result<(NewEmail, Vec<NewAttachment>)> {
        let classification =
            if crate::grpc::CLASSIFICATIONS.contains(&email.classification.as_str()) {
                email.classification
            } else {
                let parsed = pai_email::ParsedEmail {
                    subject: email.subject.clone(),
                    text: email.text.clone(),
                    ..pai_email::ParsedEmail::default()
                };
                pai_email::classify(&parsed, &[]).class.as_str().to_owned()
            };
        let mut attachments = Vec::with_capacity(email.attachments.len());
        for (n, attachment) in email.attachments.into_iter().enumerate() {
            // The same id on every try: a repeated import rewrites one file.
            let id = Uuid::new_v5(&email.id, &n.to_le_bytes());
            let is_pdf = attachment.content_type == "application/pdf"
                || attachment.data.starts_with(b"%PDF-");
            let (path, status, error) = if is_pdf {
                write_file(&self.attachment_path(account.user_id, id), &attachment.data).await?;
                (format!("{}/{id}.pdf", account.user_id), "stored", "")
            } else {
                (String::new(), "skipped", "only PDF attachments are indexed")
            };
            attachments.push(NewAttachment {
                id,
                filename: attachment.filename,
                content_type: attachment.content_type,
                size: i64::try_from(attachment.data.len()).unwrap_or(i64::MAX),
                path,
                status: status.to_owned(),
                error: error.to_owned(),
            });
        }
        let email = NewEmail {
            id: email.id,
            user_id: account.user_id,
            account_id: account.id,
            provider_id: format!("{IMPORTED_PROVIDER_PREFIX}{}", email.id),
            thread_id: email.thread_id,
            message_id: String::new(),
            in_reply_to: String::new(),
            references: Vec::new(),
            from: repo::StoredAddress::default(),
            to: Vec::new(),
            cc: Vec::new(),
            subject: email.subject,
            sent_at: None,
            received_at: email.created_at,
            labels: vec!["IMPORTED".to_owned()],
            classification,
            text: email.text,
            warnings: Vec::new(),
        };
        Ok((email, attachments))
    }
}
