//! Mail of an older install (`pai import-sqlite`): accounts with their
//! tokens sealed as a connect stores them, due for a full sync from Gmail,
//! and emails with their threads and PDF attachments, queued for search
//! like synced ones. Ids come from the importer, so a repeated call stores
//! nothing twice. The account's first sync recognises Gmail's copy of an
//! imported email by its [`ImportKey`] and fills that row in.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, NewAttachment, NewEmail, SealedTokens};
use crate::service::{INGEST_ROUTING_KEY, MailCore};
use crate::sync::write_file;

/// The provider id of an imported email: the old app kept no Gmail id, and
/// a full sync stores Gmail's messages under theirs.
pub const IMPORTED_PROVIDER_PREFIX: &str = "imported:";

/// Letters and digits of the text an imported email and Gmail's copy of
/// it are compared on: enough to tell messages apart.
const KEY_TEXT_CHARS: usize = 1000;
/// Fewer letters and digits than this in subject and text together is too
/// little to tell messages apart: such an email is not matched.
const KEY_MIN_CHARS: usize = 24;

/// What an imported email and Gmail's copy of it have in common whatever
/// each app's conversion of the message did (line breaks, quoting, case,
/// a charset decoded wrongly, a subject left RFC 2047-encoded, a body cut
/// short or without its attached messages): the ASCII letters and digits
/// of the decoded subject, and the first [`KEY_TEXT_CHARS`] of the text's. A Gmail message matches an imported email when the subjects'
/// are equal and the imported text's are the start of the message's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportKey {
    pub subject: String,
    pub text: String,
}

/// The [`ImportKey`] of a subject and text; `None` when they hold no text
/// or too little to tell apart ([`KEY_MIN_CHARS`]). Text in a script
/// without ASCII letters (Korean, Chinese...) is compared on all its
/// letters and digits instead: both sides then lack the ASCII ones alike.
pub fn import_key(subject: &str, text: &str) -> Option<ImportKey> {
    let subject = pai_email::decode_encoded_words(subject);
    key_of(&subject, text, char::is_ascii_alphanumeric)
        .or_else(|| key_of(&subject, text, |c| c.is_alphanumeric()))
}

fn key_of(subject: &str, text: &str, keep: impl Fn(&char) -> bool) -> Option<ImportKey> {
    let letters = |s: &str, limit: usize| -> String {
        s.chars()
            .filter(&keep)
            .flat_map(char::to_lowercase)
            .take(limit)
            .collect()
    };
    let subject = letters(subject, usize::MAX);
    let text = letters(text, KEY_TEXT_CHARS);
    let chars = subject.chars().count() + text.chars().count();
    (!text.is_empty() && chars >= KEY_MIN_CHARS).then_some(ImportKey { subject, text })
}

/// How long after its last imported email an imported account's first
/// sync comes: the import is over by then, so the sync finds every
/// imported email to match Gmail's copies with.
pub const FIRST_SYNC_QUIET: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// sync ([`FIRST_SYNC_QUIET`] after the last of its imported emails)
    /// refreshes it; a refresh Google refuses marks the
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
            FIRST_SYNC_QUIET,
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
        repo::mark_importing(&mut tx, account.id, FIRST_SYNC_QUIET).await?;
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
            sent_at: None,
            received_at: email.created_at,
            labels: vec!["IMPORTED".to_owned()],
            classification,
            import_key: import_key(&email.subject, &email.text),
            subject: email.subject,
            text: email.text,
            warnings: Vec::new(),
        };
        Ok((email, attachments))
    }
}

#[cfg(test)]
mod tests {
    use super::import_key;

    #[test]
    fn keys_see_past_what_the_older_app_did_to_a_message() {
        let gmail = import_key(
            "New Webinar: So, You Have A Disaster",
            "DISCOVER\u{c6} CARD News Online\n\n> quoted line\nJanuary 2002",
        )
        .unwrap();
        // Encoded subject, charset decoded wrongly, lines joined.
        let old = import_key(
            "=?utf-8?Q?New=20Webinar=3A=20So=2C=20You=20Have=20A=20Disaster?=",
            "DISCOVER\u{c3} CARD News Online quoted line January 2002",
        )
        .unwrap();
        assert_eq!(old, gmail);
        // A body cut short: the start of Gmail's.
        let cut = import_key("New Webinar: So, You Have A Disaster", "Discover card").unwrap();
        assert!(gmail.text.starts_with(&cut.text) && cut.subject == gmail.subject);
        // Too little to tell apart, or no text at all.
        assert_eq!(import_key("Hi", "ok thanks"), None);
        assert_eq!(import_key("A long enough subject line here", ""), None);
        assert_eq!(import_key("", "\u{4f60}\u{597d}"), None);
        // Korean: compared on its own letters.
        let korean = import_key("test", "\u{c2a4}\u{d2f0}\u{d574} ".repeat(8).as_str()).unwrap();
        assert_eq!(korean.text.chars().count(), 24);
    }
}
