//! Syncing one account: a full sync lists every message and fetches the
//! ones not stored yet; later syncs read Gmail's history from the stored
//! history id (404 → full sync again). Messages are stored once, whatever
//! a sync cut off halfway replays. Jobs come through RabbitMQ, so the
//! accounts spread over the replicas; a PostgreSQL advisory lock keeps one
//! sync per account at a time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pai_common::amqp::EventRetry;
use pai_common::config::AmqpSettings;
use pai_gmail::{GmailError, RawMessage, Session, SessionError};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::repo::{self, AccountRow, NewAttachment, NewEmail, StoredAddress};
use crate::service::{INGEST_ROUTING_KEY, MailCore};

/// Messages fetched at once from Gmail during a sync.
const FETCH_CONCURRENCY: usize = 8;
/// Messages stored in one transaction at most.
const STORE_BATCH: usize = 64;
/// Page size of `messages.list`.
const LIST_PAGE: u32 = 500;
/// How often the schedule looks for accounts due for a sync.
const SCHEDULE_TICK: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct SyncJob {
    account_id: Uuid,
}

/// What one sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub fetched: usize,
    pub stored: usize,
    pub skipped: usize,
    pub deleted: usize,
    pub full: bool,
}

/// Runs sync jobs until `shutdown`.
pub async fn consume(
    core: Arc<MailCore>,
    amqp: AmqpSettings,
    retry: EventRetry,
    shutdown: CancellationToken,
) {
    let queue = pai_common::amqp::MAIL_SYNC.queue(&amqp.events_exchange);
    let core = &core;
    pai_common::amqp::consume_events(
        amqp,
        retry,
        queue,
        pai_common::amqp::MAIL_SYNC.routing_key,
        shutdown,
        move |body| async move {
            let job: SyncJob =
                serde_json::from_slice(&body).map_err(|e| format!("malformed sync job: {e}"))?;
            match core.sync_account(job.account_id).await {
                Ok(_) => Ok(()),
                // Our own database failed: try the job again later.
                Err(err @ MailError::Database(_)) => Err(err.to_string()),
                // Anything else is recorded on the account; the schedule retries.
                Err(err) => {
                    tracing::info!(account_id = %job.account_id, error = %err, "mail sync ended with an error");
                    Ok(())
                }
            }
        },
    )
    .await;
}

/// Queues a sync of every account whose turn has come, every few seconds,
/// until `shutdown`. Claiming moves the account's next turn ahead in the
/// same statement, so replicas never queue one account twice.
pub async fn schedule(core: Arc<MailCore>, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(SCHEDULE_TICK);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match repo::claim_due_accounts(&core.pool, interval, 100).await {
            Ok(due) => {
                for (account_id, user_id) in due {
                    if let Err(err) = core.enqueue_sync(account_id, user_id).await {
                        tracing::warn!(%account_id, error = %err, "could not queue a scheduled sync");
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "the mail sync schedule could not read accounts")
            }
        }
    }
}

impl MailCore {
    /// Syncs one account now (unless another replica is at it), recording
    /// the outcome on the account: `active`, `reauth_required` or `error`.
    pub async fn sync_account(&self, account_id: Uuid) -> Result<SyncReport> {
        let Some(account) = repo::account_for_sync(&self.pool, account_id).await? else {
            return Ok(SyncReport::default());
        };
        if account.state == "reauth_required" {
            return Err(MailError::ReauthRequired);
        }
        let mut lock = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtext('mail.sync'), hashtext($1::text))",
        )
        .bind(account_id)
        .fetch_one(&mut *lock)
        .await?;
        if !locked {
            tracing::debug!(%account_id, "another sync of this account is running");
            return Ok(SyncReport::default());
        }
        let result = self.sync_locked(&account).await;
        // The lock goes with the connection if this fails.
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('mail.sync'), hashtext($1::text))")
            .bind(account_id)
            .execute(&mut *lock)
            .await;
        result
    }

    async fn sync_locked(&self, account: &AccountRow) -> Result<SyncReport> {
        let (google, _) = self.configured()?;
        repo::set_state(&self.pool, account.id, "syncing", "").await?;
        let tokens = self.open_tokens(account)?;
        let session = Session::new(google.oauth.clone(), tokens).with_backoff(self.backoff);
        let outcome = match self.refresh_labels(account, &session).await {
            Err(err) => Err(err),
            Ok(()) => match account.history_id {
                Some(start) => match self.incremental(account, &session, start as u64).await {
                    Err(SyncError::Gmail(SessionError::Gmail(GmailError::NotFound))) => {
                        tracing::info!(account_id = %account.id, "history expired; syncing in full");
                        repo::reset_history(&self.pool, account.id).await?;
                        self.full(account, &session).await
                    }
                    other => other,
                },
                None => self.full(account, &session).await,
            },
        };
        if let Some(tokens) = session.take_refreshed() {
            self.store_tokens(account, &tokens).await?;
        }
        match outcome {
            Ok((report, history_id)) => {
                repo::finish_sync(&self.pool, account.id, history_id).await?;
                tracing::info!(account_id = %account.id, ?report, "mail synced");
                Ok(report)
            }
            Err(SyncError::Gmail(SessionError::ReauthRequired { reason })) => {
                repo::set_state(
                    &self.pool,
                    account.id,
                    "reauth_required",
                    &format!("Google refused this account's access ({reason}); connect it again"),
                )
                .await?;
                Err(MailError::ReauthRequired)
            }
            Err(SyncError::Gmail(err)) => {
                let message = err.to_string();
                repo::set_state(&self.pool, account.id, "error", &message).await?;
                Err(MailError::Gmail(message))
            }
            Err(SyncError::Mail(err)) => {
                let _ = repo::set_state(&self.pool, account.id, "error", &err.to_string()).await;
                Err(err)
            }
        }
    }

    /// Stores the account's labels as Gmail names them now: one
    /// `labels.list` a sync, so a renamed label shows its new name.
    async fn refresh_labels(
        &self,
        account: &AccountRow,
        session: &Session,
    ) -> Result<(), SyncError> {
        let google = self.configured()?.0;
        let labels = session.call(|token| google.gmail.labels(token)).await?;
        repo::replace_labels(&self.pool, account.id, &labels).await?;
        Ok(())
    }

    /// Lists every message; fetches and stores those not stored yet;
    /// deletes those no longer there (imported emails stay: they have no
    /// Gmail id). Returns the history id to go on from, read before
    /// listing so nothing that arrives meanwhile is missed.
    async fn full(
        &self,
        account: &AccountRow,
        session: &Session,
    ) -> Result<(SyncReport, u64), SyncError> {
        let google = self.configured()?.0;
        let profile = session.call(|token| google.gmail.profile(token)).await?;
        let stored: HashSet<String> = repo::stored_provider_ids(&self.pool, account.id)
            .await?
            .into_iter()
            .collect();
        let mut listed = HashSet::new();
        let mut report = SyncReport {
            full: true,
            ..SyncReport::default()
        };
        let mut page_token: Option<String> = None;
        loop {
            let page = session
                .call(|token| {
                    google
                        .gmail
                        .list_messages(token, page_token.as_deref(), LIST_PAGE)
                })
                .await?;
            let new: Vec<String> = page
                .messages
                .into_iter()
                .map(|m| m.id)
                .filter(|id| listed.insert(id.clone()) && !stored.contains(id))
                .collect();
            self.fetch_and_store(account, session, new, &mut report)
                .await?;
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => break,
            }
        }
        let gone: Vec<String> = stored.difference(&listed).cloned().collect();
        report.deleted = self.delete_messages(account, &gone).await?;
        Ok((report, profile.history_id))
    }

    /// Applies Gmail's history since `start`: new messages fetched and
    /// stored, deleted ones removed.
    async fn incremental(
        &self,
        account: &AccountRow,
        session: &Session,
        start: u64,
    ) -> Result<(SyncReport, u64), SyncError> {
        let google = self.configured()?.0;
        let mut added = Vec::new();
        let mut deleted = Vec::new();
        let mut history_id = start;
        let mut page_token: Option<String> = None;
        loop {
            let page = session
                .call(|token| google.gmail.history(token, start, page_token.as_deref()))
                .await?;
            added.extend(page.added.into_iter().map(|m| m.id));
            deleted.extend(page.deleted);
            history_id = history_id.max(page.history_id);
            match page.next_page_token {
                Some(next) => page_token = Some(next),
                None => break,
            }
        }
        let stored: HashSet<String> = repo::stored_provider_ids(&self.pool, account.id)
            .await?
            .into_iter()
            .collect();
        let gone: HashSet<&String> = deleted.iter().collect();
        let mut seen = HashSet::new();
        let new: Vec<String> = added
            .into_iter()
            .filter(|id| !stored.contains(id) && !gone.contains(id) && seen.insert(id.clone()))
            .collect();
        let mut report = SyncReport::default();
        self.fetch_and_store(account, session, new, &mut report)
            .await?;
        report.deleted = self.delete_messages(account, &deleted).await?;
        Ok((report, history_id))
    }

    /// Fetches messages a few at a time and, beside the fetching, stores
    /// those fetched so far in one transaction each turn (up to
    /// [`STORE_BATCH`]): a commit per message made a large sync wait on the
    /// disk. A message deleted between the list and the fetch is skipped;
    /// when a fetch fails, what was fetched before it is stored first.
    async fn fetch_and_store(
        &self,
        account: &AccountRow,
        session: &Session,
        ids: Vec<String>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        let google = self.configured()?.0;
        let (sender, mut receiver) = tokio::sync::mpsc::channel(STORE_BATCH);
        let fetcher = async move {
            let mut fetched = futures::stream::iter(ids)
                .map(|id| async move {
                    match session.call(|token| google.gmail.get_raw(token, &id)).await {
                        Ok(message) => Ok(Some(message)),
                        Err(SessionError::Gmail(GmailError::NotFound)) => Ok(None),
                        Err(err) => Err(SyncError::Gmail(err)),
                    }
                })
                .buffer_unordered(FETCH_CONCURRENCY);
            while let Some(next) = fetched.next().await {
                let failed = next.is_err();
                let item = match next {
                    Ok(None) => continue,
                    Ok(Some(message)) => Ok(message),
                    Err(err) => Err(err),
                };
                // A failed fetch ends the sync; a closed channel means the
                // storer stopped on an error of its own.
                if sender.send(item).await.is_err() || failed {
                    return;
                }
            }
        };
        let storer = async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = Vec::with_capacity(STORE_BATCH);
                let mut failure = None;
                for item in std::iter::once(first)
                    .chain(std::iter::from_fn(|| receiver.try_recv().ok()))
                    .take(STORE_BATCH)
                {
                    match item {
                        Ok(message) => batch.push(message),
                        Err(err) => failure = Some(err),
                    }
                }
                report.fetched += batch.len();
                let stored = self.store_messages(account, &batch).await?;
                report.stored += stored;
                report.skipped += batch.len() - stored;
                if let Some(err) = failure {
                    return Err(err);
                }
            }
            Ok(())
        };
        let ((), stored) = tokio::join!(fetcher, storer);
        stored
    }

    async fn delete_messages(&self, account: &AccountRow, ids: &[String]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sources = repo::delete_emails(&self.pool, account.id, ids).await?;
        self.unindex(account.user_id, &sources).await?;
        Ok(sources.len())
    }

    /// Parses, classifies and stores messages with their PDF attachments
    /// and ingest jobs, in one transaction. A message that does not parse
    /// is recorded as skipped with the reason; Gmail's copy of an imported
    /// email fills that email's row in. Returns how many were stored (not
    /// stored before).
    async fn store_messages(&self, account: &AccountRow, messages: &[RawMessage]) -> Result<usize> {
        let mut prepared = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(email) = self.prepare(account, message).await? {
                prepared.push(email);
            }
        }
        if prepared.is_empty() {
            return Ok(0);
        }
        let imports = repo::has_unmatched_imports(&self.pool, account.id).await?;
        let mut tx = self.pool.begin().await?;
        let mut stored = 0;
        let mut unused_files = Vec::new();
        for (email, attachments) in &prepared {
            let key = imports
                .then(|| crate::import::import_key(&email.subject, &email.text))
                .flatten();
            if let Some(key) = key
                && repo::adopt_imported(&mut tx, email, &key, INGEST_ROUTING_KEY)
                    .await?
                    .is_some()
            {
                // The imported email keeps the attachments it came with.
                stored += 1;
                unused_files.extend(attachments);
                continue;
            }
            let job = serde_json::json!({ "user_id": account.user_id, "email_id": email.id });
            if repo::insert_email(&mut tx, email, attachments, &job, INGEST_ROUTING_KEY).await? {
                stored += 1;
            } else {
                // Stored by an earlier, interrupted sync.
                unused_files.extend(attachments);
            }
        }
        tx.commit().await?;
        for attachment in unused_files.iter().filter(|a| !a.path.is_empty()) {
            let _ =
                tokio::fs::remove_file(self.attachment_path(account.user_id, attachment.id)).await;
        }
        Ok(stored)
    }

    /// Parses and classifies one message and writes its PDF attachments;
    /// `None` when it does not parse (recorded as skipped).
    async fn prepare(
        &self,
        account: &AccountRow,
        message: &RawMessage,
    ) -> Result<Option<(NewEmail, Vec<NewAttachment>)>> {
        let parsed = match pai_email::parse(&message.raw, &self.parse_limits) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::info!(account_id = %account.id, message = %message.id, error = %err, "message skipped");
                repo::record_skipped(&self.pool, account.id, &message.id, &err.to_string()).await?;
                return Ok(None);
            }
        };
        let class = pai_email::classify(&parsed, &message.label_ids);
        let mut attachments = Vec::new();
        for attachment in &parsed.attachments {
            let id = Uuid::new_v4();
            let is_pdf = attachment.content_type == "application/pdf"
                || attachment.data.starts_with(b"%PDF-");
            let (path, status, error) = if is_pdf {
                write_file(&self.attachment_path(account.user_id, id), &attachment.data).await?;
                (
                    format!("{}/{id}.pdf", account.user_id),
                    "stored",
                    String::new(),
                )
            } else {
                (
                    String::new(),
                    "skipped",
                    "only PDF attachments are indexed".to_owned(),
                )
            };
            attachments.push(NewAttachment {
                id,
                filename: attachment.filename.clone(),
                content_type: attachment.content_type.clone(),
                size: i64::try_from(attachment.size).unwrap_or(i64::MAX),
                path,
                status: status.to_owned(),
                error,
            });
        }
        for skipped in &parsed.skipped_attachments {
            attachments.push(NewAttachment {
                id: Uuid::new_v4(),
                filename: skipped.filename.clone(),
                content_type: String::new(),
                size: 0,
                path: String::new(),
                status: "skipped".to_owned(),
                error: skipped.reason.clone(),
            });
        }
        let address = |a: &pai_email::Address| StoredAddress {
            name: a.name.clone().unwrap_or_default(),
            email: a.email.clone(),
        };
        let email = NewEmail {
            id: Uuid::new_v4(),
            user_id: account.user_id,
            account_id: account.id,
            provider_id: message.id.clone(),
            thread_id: message.thread_id.clone(),
            message_id: parsed.message_id.clone().unwrap_or_default(),
            in_reply_to: parsed.in_reply_to.clone().unwrap_or_default(),
            references: parsed.references.clone(),
            from: parsed.from.as_ref().map(address).unwrap_or_default(),
            to: parsed.to.iter().map(address).collect(),
            cc: parsed.cc.iter().map(address).collect(),
            subject: parsed.subject.clone(),
            sent_at: parsed.date,
            received_at: message.internal_date,
            labels: message.label_ids.clone(),
            classification: class.class.as_str().to_owned(),
            text: parsed.text.clone(),
            warnings: parsed.warnings.clone(),
            import_key: None,
        };
        Ok(Some((email, attachments)))
    }
}

/// Writes a file whole or not at all (a sync killed mid-write leaves no
/// half file under the final name).
pub(crate) async fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let io =
        |err: std::io::Error| MailError::Database(format!("writing {}: {err}", path.display()));
    if let Some(folder) = path.parent() {
        tokio::fs::create_dir_all(folder).await.map_err(io)?;
    }
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, bytes).await.map_err(io)?;
    tokio::fs::rename(&partial, path).await.map_err(io)
}

/// Why a sync stopped: Google's side, or ours.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Gmail(#[from] SessionError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

impl From<sqlx::Error> for SyncError {
    fn from(err: sqlx::Error) -> Self {
        Self::Mail(err.into())
    }
}
