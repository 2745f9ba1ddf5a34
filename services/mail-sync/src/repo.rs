//! SQL over schema `mail`. Every statement on user data filters by user id,
//! except the sync's own, which work on one account id the sync was given.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::error::{MailError, Result};
use crate::import::ImportKey;

/// An address as stored (`to_addrs`, `cc_addrs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAddress {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub email_address: String,
    pub access_token: Vec<u8>,
    pub refresh_token: Vec<u8>,
    pub key_id: String,
    pub token_expires_at: DateTime<Utc>,
    pub history_id: Option<i64>,
    pub state: String,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub messages: i64,
    /// Emails are being imported into it (`pai import-sqlite`).
    pub importing: bool,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.user_id, a.provider, a.email_address, a.access_token, \
     a.refresh_token, a.key_id, a.token_expires_at, a.history_id, a.state, a.last_sync_at, \
     a.last_error, a.created_at, \
     (SELECT count(*) FROM mail.emails e WHERE e.account_id = a.id) AS messages, \
     coalesce(a.importing_until > now(), false) AS importing";

/// A connect in flight, as `take_oauth_session` returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthSessionRow {
    pub user_id: Uuid,
    pub pkce_verifier: Vec<u8>,
    pub key_id: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert_oauth_session(
    pool: &PgPool,
    state_sha256: &[u8],
    user_id: Uuid,
    pkce_verifier: &[u8],
    key_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    // Expired connects are of no use to anyone: drop them on the way.
    sqlx::query("DELETE FROM mail.oauth_sessions WHERE expires_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO mail.oauth_sessions (state_sha256, user_id, pkce_verifier, key_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state_sha256)
    .bind(user_id)
    .bind(pkce_verifier)
    .bind(key_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a connect used and returns it as it was before: a state is good
/// once, so two redirects racing with one state see one `used_at: None`.
pub async fn take_oauth_session(
    pool: &PgPool,
    state_sha256: &[u8],
) -> Result<Option<OAuthSessionRow>> {
    let mut tx = pool.begin().await?;
    let session: Option<OAuthSessionRow> = sqlx::query_as(
        "SELECT user_id, pkce_verifier, key_id, expires_at, used_at FROM mail.oauth_sessions \
         WHERE state_sha256 = $1 FOR UPDATE",
    )
    .bind(state_sha256)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE mail.oauth_sessions SET used_at = now() \
         WHERE state_sha256 = $1 AND used_at IS NULL",
    )
    .bind(state_sha256)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// The tokens of an account, sealed.
pub struct SealedTokens<'a> {
    pub access_token: &'a [u8],
    pub refresh_token: &'a [u8],
    pub key_id: &'a str,
    pub expires_at: DateTime<Utc>,
    pub scope: &'a str,
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds an account's id, user, address and sealed tokens as the query's
/// parameters $1 to $8.
fn bind_account<'q>(
    query: PgQuery<'q>,
    id: Uuid,
    user_id: Uuid,
    email_address: &'q str,
    tokens: &SealedTokens<'q>,
) -> PgQuery<'q> {
    query
        .bind(id)
        .bind(user_id)
        .bind(email_address)
        .bind(tokens.access_token)
        .bind(tokens.refresh_token)
        .bind(tokens.key_id)
        .bind(tokens.expires_at)
        .bind(tokens.scope)
}

/// Adds an account, or reconnects it (new tokens, state `active`) when the
/// user already has this address. Returns its id.
pub async fn upsert_account(
    pool: &PgPool,
    id: Uuid,
    user_id: Uuid,
    email_address: &str,
    tokens: &SealedTokens<'_>,
) -> Result<Uuid> {
    let query = sqlx::query(
        "INSERT INTO mail.email_accounts \
           (id, user_id, email_address, access_token, refresh_token, key_id, token_expires_at, scope) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (user_id, provider, email_address) DO UPDATE SET \
           access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token, \
           key_id = EXCLUDED.key_id, token_expires_at = EXCLUDED.token_expires_at, \
           scope = EXCLUDED.scope, state = 'active', last_error = '', next_sync_at = now(), \
           updated_at = now() \
         RETURNING id",
    );
    let row = bind_account(query, id, user_id, email_address, tokens)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("id")?)
}

/// Adds an imported account unless its id is there, due for a full sync
/// `quiet` from now; returns whether it was added.
pub async fn insert_imported_account(
    pool: &PgPool,
    id: Uuid,
    user_id: Uuid,
    email_address: &str,
    tokens: &SealedTokens<'_>,
    created_at: DateTime<Utc>,
    quiet: std::time::Duration,
) -> Result<bool> {
    let query = sqlx::query(
        "INSERT INTO mail.email_accounts (id, user_id, email_address, access_token, \
           refresh_token, key_id, token_expires_at, scope, created_at, updated_at, next_sync_at, \
           importing_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, now() + make_interval(secs => $10), \
           now() + make_interval(secs => $10)) \
         ON CONFLICT (id) DO NOTHING",
    );
    let inserted = bind_account(query, id, user_id, email_address, tokens)
        .bind(created_at)
        .bind(quiet.as_secs_f64())
        .execute(pool)
        .await;
    match inserted {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(MailError::Invalid(format!(
                "this user already has an account for {email_address} (addresses compare without regard to case)"
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// Marks an account as being imported into until `quiet` from now, and
/// moves its first sync (if it never synced) to then at the earliest.
pub async fn mark_importing(
    tx: &mut Transaction<'_, Postgres>,
    account_id: Uuid,
    quiet: std::time::Duration,
) -> Result<()> {
    sqlx::query(
        "UPDATE mail.email_accounts SET importing_until = now() + make_interval(secs => $2), \
           next_sync_at = CASE WHEN last_sync_at IS NULL \
             THEN greatest(next_sync_at, now() + make_interval(secs => $2)) \
             ELSE next_sync_at END \
         WHERE id = $1",
    )
    .bind(account_id)
    .bind(quiet.as_secs_f64())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn update_tokens(
    pool: &PgPool,
    account_id: Uuid,
    tokens: &SealedTokens<'_>,
) -> Result<()> {
    sqlx::query(
        "UPDATE mail.email_accounts SET access_token = $2, refresh_token = $3, key_id = $4, \
         token_expires_at = $5, updated_at = now() WHERE id = $1",
    )
    .bind(account_id)
    .bind(tokens.access_token)
    .bind(tokens.refresh_token)
    .bind(tokens.key_id)
    .bind(tokens.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn list_accounts(pool: &PgPool, user_id: Uuid) -> Result<Vec<AccountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM mail.email_accounts a WHERE a.user_id = $1 \
         ORDER BY a.created_at, a.id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

pub async fn get_account(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM mail.email_accounts a WHERE a.user_id = $1 AND a.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The sync's read of its account (the job names it; no user to check).
pub async fn account_for_sync(pool: &PgPool, id: Uuid) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM mail.email_accounts a WHERE a.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Accounts whose scheduled sync is due, pushed `interval` ahead at once so
/// that another replica's tick does not pick them too.
pub async fn claim_due_accounts(
    pool: &PgPool,
    interval: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(
        "UPDATE mail.email_accounts a SET next_sync_at = now() + make_interval(secs => $1) \
         FROM (SELECT id FROM mail.email_accounts \
               WHERE next_sync_at <= now() AND state <> 'reauth_required' \
               ORDER BY next_sync_at LIMIT $2 FOR UPDATE SKIP LOCKED) due \
         WHERE a.id = due.id RETURNING a.id, a.user_id",
    )
    .bind(interval.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn set_state(pool: &PgPool, account_id: Uuid, state: &str, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE mail.email_accounts SET state = $2, last_error = $3, updated_at = now() \
         WHERE id = $1",
    )
    .bind(account_id)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A sync ended well: the history id to continue from.
pub async fn finish_sync(pool: &PgPool, account_id: Uuid, history_id: u64) -> Result<()> {
    sqlx::query(
        "UPDATE mail.email_accounts SET state = 'active', last_error = '', history_id = $2, \
         last_sync_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(account_id)
    .bind(i64::try_from(history_id).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the history id (Google said it expired): the next sync is full.
pub async fn reset_history(pool: &PgPool, account_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE mail.email_accounts SET history_id = NULL WHERE id = $1")
        .bind(account_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes an account with its mail (cascade); returns the ids of the
/// emails and attachments that were indexed, for search to forget.
pub async fn delete_account(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<(AccountRow, Vec<Uuid>)>> {
    let mut tx = pool.begin().await?;
    let Some(account) = sqlx::query_as::<_, AccountRow>(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM mail.email_accounts a \
         WHERE a.user_id = $1 AND a.id = $2 FOR UPDATE"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let sources: Vec<Uuid> = sqlx::query_scalar(
        "SELECT e.id FROM mail.emails e WHERE e.account_id = $1 \
         UNION ALL SELECT t.id FROM mail.email_attachments t \
           JOIN mail.emails e ON e.id = t.email_id WHERE e.account_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mail.email_accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((account, sources)))
}

/// Replaces the account's labels with what `labels.list` reported.
pub async fn replace_labels(
    pool: &PgPool,
    account_id: Uuid,
    labels: &[pai_gmail::Label],
) -> Result<()> {
    let kind = |label: &pai_gmail::Label| match label.kind {
        pai_gmail::LabelKind::System => "system",
        pai_gmail::LabelKind::User | pai_gmail::LabelKind::Other => "user",
    };
    let ids: Vec<&str> = labels.iter().map(|l| l.id.as_str()).collect();
    let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    let kinds: Vec<&str> = labels.iter().map(kind).collect();
    let mut tx = pool.begin().await?;
    // Two syncs of one account (the schedule's and "Sync now") replace its
    // labels one after the other, not crosswise into a deadlock.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mail.labels'), hashtext($1::text))")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM mail.labels WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO mail.labels (account_id, label_id, name, kind) \
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(&ids)
    .bind(&names)
    .bind(&kinds)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Ids Gmail gave of the account's stored messages (an imported email no
/// sync has matched has none: a sync neither skips nor deletes it).
pub async fn stored_provider_ids(pool: &PgPool, account_id: Uuid) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT provider_id FROM mail.emails \
         WHERE account_id = $1 AND NOT starts_with(provider_id, $2) \
         UNION ALL SELECT provider_id FROM mail.skipped_messages WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(crate::import::IMPORTED_PROVIDER_PREFIX)
    .fetch_all(pool)
    .await?)
}

/// A message as the sync stores it.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub id: Uuid,
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub provider_id: String,
    pub thread_id: String,
    pub message_id: String,
    pub in_reply_to: String,
    pub references: Vec<String>,
    pub from: StoredAddress,
    pub to: Vec<StoredAddress>,
    pub cc: Vec<StoredAddress>,
    pub subject: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub labels: Vec<String>,
    pub classification: String,
    pub text: String,
    pub warnings: Vec<String>,
    /// An imported email's key to match Gmail's copy by; `None` for mail
    /// from Gmail.
    pub import_key: Option<ImportKey>,
}

/// An attachment as the sync stores it.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub path: String,
    pub status: String,
    pub error: String,
}

/// Binds a message's fields, from its Gmail id to its warnings, as the
/// query's parameters $4 to $19.
fn bind_message<'q>(query: PgQuery<'q>, email: &'q NewEmail) -> PgQuery<'q> {
    query
        .bind(&email.provider_id)
        .bind(&email.thread_id)
        .bind(&email.message_id)
        .bind(&email.in_reply_to)
        .bind(&email.references)
        .bind(&email.from.name)
        .bind(&email.from.email)
        .bind(Json(&email.to))
        .bind(Json(&email.cc))
        .bind(&email.subject)
        .bind(email.sent_at)
        .bind(email.received_at)
        .bind(&email.labels)
        .bind(&email.classification)
        .bind(&email.text)
        .bind(&email.warnings)
}

/// Stores a message with its attachments and its ingest job in one
/// transaction. A message already stored (a replayed sync, an import
/// repeated after a sync filled its email in) changes nothing and returns
/// false.
pub async fn insert_email(
    tx: &mut Transaction<'_, Postgres>,
    email: &NewEmail,
    attachments: &[NewAttachment],
    job: &serde_json::Value,
    routing_key: &str,
) -> Result<bool> {
    let query = sqlx::query(
        "INSERT INTO mail.emails (id, user_id, account_id, provider_id, thread_id, message_id, \
           in_reply_to, \"references\", from_name, from_email, to_addrs, cc_addrs, subject, \
           sent_at, sort_at, labels, classification, text, warnings, import_subject, \
           import_body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
           coalesce($14, $15), $16, $17, $18, $19, $20, $21) \
         ON CONFLICT DO NOTHING",
    )
    .bind(email.id)
    .bind(email.user_id)
    .bind(email.account_id);
    let inserted = bind_message(query, email)
        .bind(email.import_key.as_ref().map(|k| &k.subject))
        .bind(email.import_key.as_ref().map(|k| &k.text))
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    for attachment in attachments {
        sqlx::query(
            "INSERT INTO mail.email_attachments \
               (id, email_id, user_id, filename, content_type, size, path, status, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(attachment.id)
        .bind(email.id)
        .bind(email.user_id)
        .bind(&attachment.filename)
        .bind(&attachment.content_type)
        .bind(attachment.size)
        .bind(&attachment.path)
        .bind(&attachment.status)
        .bind(&attachment.error)
        .execute(&mut **tx)
        .await?;
    }
    queue_job(tx, routing_key, job).await?;
    Ok(true)
}

/// Queues an ingest job in the outbox, in `tx`.
async fn queue_job(
    tx: &mut Transaction<'_, Postgres>,
    routing_key: &str,
    job: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO mail.outbox (routing_key, payload) VALUES ($1, $2)")
        .bind(routing_key)
        .bind(job)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether the account holds imported emails no sync has matched yet.
pub async fn has_unmatched_imports(pool: &PgPool, account_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mail.emails \
         WHERE account_id = $1 AND import_subject IS NOT NULL)",
    )
    .bind(account_id)
    .fetch_one(pool)
    .await?)
}

/// Makes `email`, a message from Gmail with the key `key`, the Gmail copy
/// of the imported email of its account that `key` matches (the same
/// subject, and the imported text the start of the message's; the longest
/// such): that row takes the message's Gmail id, headers, labels, class
/// and text and keeps its id (history and citations still point at it) and
/// its attachments, and its ingest job is queued again. Returns the row's
/// id, or `None` when no imported email matches (or the message is stored
/// already).
pub async fn adopt_imported(
    tx: &mut Transaction<'_, Postgres>,
    email: &NewEmail,
    key: &ImportKey,
    routing_key: &str,
) -> Result<Option<Uuid>> {
    let query = sqlx::query(
        "UPDATE mail.emails SET provider_id = $4, thread_id = $5, message_id = $6, \
           in_reply_to = $7, \"references\" = $8, from_name = $9, from_email = $10, \
           to_addrs = $11, cc_addrs = $12, subject = $13, sent_at = $14, \
           sort_at = coalesce($14, $15), labels = $16, classification = $17, text = $18, \
           warnings = $19, import_subject = NULL, import_body = NULL, index_status = 'queued' \
         WHERE id = (SELECT id FROM mail.emails \
             WHERE account_id = $1 AND import_subject = $2 AND starts_with($3, import_body) \
             ORDER BY length(import_body) DESC, id LIMIT 1 FOR UPDATE) \
           AND NOT EXISTS (SELECT 1 FROM mail.emails WHERE account_id = $1 AND provider_id = $4) \
         RETURNING id",
    )
    .bind(email.account_id)
    .bind(&key.subject)
    .bind(&key.text);
    let adopted: Option<Uuid> = bind_message(query, email)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()?;
    if let Some(id) = adopted {
        let job = serde_json::json!({ "user_id": email.user_id, "email_id": id });
        queue_job(tx, routing_key, &job).await?;
    }
    Ok(adopted)
}

/// Records a message that could not be stored, with why.
pub async fn record_skipped(
    pool: &PgPool,
    account_id: Uuid,
    provider_id: &str,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mail.skipped_messages (account_id, provider_id, reason) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, provider_id) DO UPDATE SET reason = EXCLUDED.reason",
    )
    .bind(account_id)
    .bind(provider_id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes messages Gmail deleted; returns the search sources to forget.
pub async fn delete_emails(
    pool: &PgPool,
    account_id: Uuid,
    provider_ids: &[String],
) -> Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let sources: Vec<Uuid> = sqlx::query_scalar(
        "SELECT e.id FROM mail.emails e WHERE e.account_id = $1 AND e.provider_id = ANY($2) \
         UNION ALL SELECT t.id FROM mail.email_attachments t JOIN mail.emails e ON e.id = t.email_id \
           WHERE e.account_id = $1 AND e.provider_id = ANY($2)",
    )
    .bind(account_id)
    .bind(provider_ids)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mail.emails WHERE account_id = $1 AND provider_id = ANY($2)")
        .bind(account_id)
        .bind(provider_ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM mail.skipped_messages WHERE account_id = $1 AND provider_id = ANY($2)",
    )
    .bind(account_id)
    .bind(provider_ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sources)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailRow {
    pub id: Uuid,
    pub account_id: Uuid,
    pub thread_id: String,
    pub message_id: String,
    pub in_reply_to: String,
    pub references: Vec<String>,
    pub from_name: String,
    pub from_email: String,
    pub to_addrs: Json<Vec<StoredAddress>>,
    pub cc_addrs: Json<Vec<StoredAddress>>,
    pub subject: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub sort_at: DateTime<Utc>,
    pub labels: Vec<String>,
    pub classification: String,
    pub text: String,
}

/// The columns of an [`EmailRow`] from `mail.emails` (unaliased): labels
/// by the name Gmail last reported for them, in their stored order.
const EMAIL_COLUMNS: &str = "id, account_id, thread_id, message_id, in_reply_to, \"references\", \
     from_name, from_email, to_addrs, cc_addrs, subject, sent_at, sort_at, \
     ARRAY(SELECT coalesce(l.name, x.id) FROM unnest(emails.labels) WITH ORDINALITY AS x (id, n) \
           LEFT JOIN mail.labels l ON l.account_id = emails.account_id AND l.label_id = x.id \
           ORDER BY x.n) AS labels, \
     classification, text";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: Uuid,
    pub email_id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub status: String,
    pub error: String,
}

/// The filters of a mail list.
#[derive(Debug, Clone, Default)]
pub struct EmailFilter {
    pub classification: Option<String>,
    pub account_id: Option<Uuid>,
    pub thread_id: Option<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

/// A page of the user's mail, newest first, after `cursor`.
pub async fn list_emails(
    pool: &PgPool,
    user_id: Uuid,
    filter: &EmailFilter,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<EmailRow>> {
    let (cursor_at, cursor_id) = cursor.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {EMAIL_COLUMNS} FROM mail.emails WHERE user_id = $1 \
           AND ($2::text IS NULL OR classification = $2) \
           AND ($3::uuid IS NULL OR account_id = $3) \
           AND ($4::text IS NULL OR thread_id = $4) \
           AND ($5::timestamptz IS NULL OR sort_at >= $5) \
           AND ($6::timestamptz IS NULL OR sort_at < $6) \
           AND ($7::timestamptz IS NULL OR (sort_at, id) < ($7, $8)) \
         ORDER BY sort_at DESC, id DESC LIMIT $9"
    ))
    .bind(user_id)
    .bind(filter.classification.as_deref())
    .bind(filter.account_id)
    .bind(filter.thread_id.as_deref())
    .bind(filter.after)
    .bind(filter.before)
    .bind(cursor_at)
    .bind(cursor_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get_email(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<EmailRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EMAIL_COLUMNS} FROM mail.emails WHERE user_id = $1 AND id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The user's emails of `ids` that still exist.
pub async fn get_emails(pool: &PgPool, user_id: Uuid, ids: &[Uuid]) -> Result<Vec<EmailRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EMAIL_COLUMNS} FROM mail.emails WHERE user_id = $1 AND id = ANY($2)"
    ))
    .bind(user_id)
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// A thread's messages, oldest first.
pub async fn thread(pool: &PgPool, user_id: Uuid, thread_id: &str) -> Result<Vec<EmailRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EMAIL_COLUMNS} FROM mail.emails WHERE user_id = $1 AND thread_id = $2 \
         ORDER BY sort_at, id"
    ))
    .bind(user_id)
    .bind(thread_id)
    .fetch_all(pool)
    .await?)
}

pub async fn attachments(
    pool: &PgPool,
    user_id: Uuid,
    email_ids: &[Uuid],
) -> Result<Vec<AttachmentRow>> {
    Ok(sqlx::query_as(
        "SELECT id, email_id, filename, content_type, size, status, error \
         FROM mail.email_attachments WHERE user_id = $1 AND email_id = ANY($2) ORDER BY filename, id",
    )
    .bind(user_id)
    .bind(email_ids)
    .fetch_all(pool)
    .await?)
}

/// Erases every row of a user (the `user.deleted` event) and refuses any
/// later insert for them. Returns the accounts, whose tokens the caller
/// revokes at Google.
pub async fn erase_user(pool: &PgPool, user_id: Uuid) -> Result<Vec<AccountRow>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT mail.record_erased($1)")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let accounts: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM mail.email_accounts a WHERE a.user_id = $1"
    ))
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM mail.email_accounts WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM mail.oauth_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(accounts)
}

pub async fn set_index_status(pool: &PgPool, email_ids: &[Uuid], status: &str) -> Result<()> {
    sqlx::query("UPDATE mail.emails SET index_status = $2 WHERE id = ANY($1)")
        .bind(email_ids)
        .bind(status)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_attachment_status(
    pool: &PgPool,
    attachment_id: Uuid,
    status: &str,
    error: &str,
) -> Result<()> {
    sqlx::query("UPDATE mail.email_attachments SET status = $2, error = $3 WHERE id = $1")
        .bind(attachment_id)
        .bind(status)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}
