//! `pai export-sqlite`: writes pai's data as an older install (the
//! migration plan's SQLite schema, and its files under `data/uploads/`
//! beside the database), the way back to the old app while people try pai.
//!
//! It only reads PostgreSQL. What the old schema has no room for, or what
//! cannot be given back, the report names: users whose hash is argon2id
//! (the old app verifies bcrypt only: they reset their password there),
//! tokens without the key that opens them, Gmail connects in flight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use pai_common::Env;
use pai_common::config::DatabaseSettings;
use pai_mail_sync::crypto::{KeyRing, token_context};
use rusqlite::{Connection, params};
use sqlx::PgPool;
use uuid::Uuid;

use crate::old_install::SCHEMA;

/// What an export wrote and what it could not.
#[derive(Debug, Default)]
pub struct Report {
    pub out: PathBuf,
    /// Rows written per old table.
    pub counts: Vec<(&'static str, u64)>,
    /// Files copied under `data/uploads/`.
    pub files: u64,
    /// Users whose password hash the old app cannot verify.
    pub must_reset: Vec<String>,
    /// What cannot come back, in words.
    pub notes: Vec<String>,
}

impl Report {
    pub fn count(&self, table: &str) -> u64 {
        self.counts
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }

    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("exported into {}\n", self.out.display());
        for (table, n) in &self.counts {
            let _ = writeln!(out, "  {table:<18} {n:>7}");
        }
        let _ = writeln!(out, "  files              {:>7}", self.files);
        if !self.must_reset.is_empty() {
            let _ = writeln!(
                out,
                "\nthese users' password hashes are argon2id, which the old app cannot verify: \
                 they must reset their password there:"
            );
            for user in &self.must_reset {
                let _ = writeln!(out, "  {user}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nwhat does not come back:");
            for note in &self.notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }
}

fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Empty text as NULL: the old schema's missing values.
fn nullable(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    username: String,
    password_hash: String,
    is_admin: bool,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: Uuid,
    user_id: Uuid,
    title: String,
    filename: String,
    metadata: serde_json::Value,
    namespace: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct QueryRow {
    user_id: Uuid,
    query: String,
    response: String,
    sources: serde_json::Value,
    status: String,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    user_id: Uuid,
    email_address: String,
    access_token: Vec<u8>,
    refresh_token: Vec<u8>,
    key_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EmailRow {
    id: Uuid,
    user_id: Uuid,
    account_id: Uuid,
    thread_id: String,
    subject: String,
    text: String,
    classification: String,
    sort_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    email_id: Uuid,
    user_id: Uuid,
    filename: String,
    content_type: String,
    size: i64,
    path: String,
}

/// Integer ids for the old schema, in the order rows are written.
struct Ids(HashMap<Uuid, i64>);

impl Ids {
    fn assign(&mut self, id: Uuid) -> i64 {
        let next = self.0.len() as i64 + 1;
        *self.0.entry(id).or_insert(next)
    }

    fn get(&self, id: &Uuid) -> Option<i64> {
        self.0.get(id).copied()
    }
}

/// Copies `from` to `data/uploads/{user}/{name}` under `root`, under a
/// name no other file there has; returns the path relative to `root`.
fn place(root: &Path, user: i64, name: &str, from: &Path) -> anyhow::Result<String> {
    let folder = Path::new("data").join("uploads").join(user.to_string());
    std::fs::create_dir_all(root.join(&folder))?;
    let name = Path::new(name)
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut relative = folder.join(&name);
    let mut n = 1;
    while root.join(&relative).exists() {
        relative = folder.join(format!("{n}_{name}"));
        n += 1;
    }
    std::fs::copy(from, root.join(&relative))
        .with_context(|| format!("copying {}", from.display()))?;
    Ok(relative.to_string_lossy().into_owned())
}

/// Writes the export into `out` (a new file).
pub async fn run(env: &Env, out: &Path) -> anyhow::Result<Report> {
    if out.exists() {
        bail!("{} exists: export into a new file", out.display());
    }
    let root = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&root)?;
    let pool = pai_common::db::pool(&DatabaseSettings::from_env(env)?)?;
    let uploads = PathBuf::from(env.string("UPLOAD_PATH", "data/uploads"));
    let keys = pai_mail_sync::MailSettings::from_env(env)?.keys;
    let mut db = Connection::open(out).with_context(|| format!("creating {}", out.display()))?;
    let tx = db.transaction()?;
    tx.execute_batch(SCHEMA)?;
    let mut report = Report {
        out: out.to_path_buf(),
        ..Report::default()
    };
    let users = users(&pool, &tx, &mut report).await?;
    let documents = documents(&pool, &tx, &root, &uploads, &users, &mut report).await?;
    queries(&pool, &tx, &users, &documents, &mut report).await?;
    let accounts = accounts(&pool, &tx, &users, keys.as_ref(), &mut report).await?;
    emails(&pool, &tx, &root, &uploads, &users, &accounts, &mut report).await?;
    tx.commit()?;
    report.counts.push(("oauth_sessions", 0));
    report
        .notes
        .push("Gmail connects in flight (pai's oauth_sessions) are not exported".into());
    report.notes.push(
        "document content is the text pai extracted and indexed, which may differ from the old app's"
            .into(),
    );
    report.notes.push(
        "timestamps are written in one format (RFC 3339, UTC); empty text is written as NULL"
            .into(),
    );
    report.notes.push(
        "an imported document that had no title has the one pai gave it (from its file name), \
         an imported email that had no classification pai's"
            .into(),
    );
    Ok(report)
}

async fn users(
    pool: &PgPool,
    tx: &rusqlite::Transaction<'_>,
    report: &mut Report,
) -> anyhow::Result<Ids> {
    let rows: Vec<UserRow> = sqlx::query_as(
        "SELECT id, email, username, password_hash, is_admin, is_active, created_at, updated_at \
         FROM auth.users ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    let mut ids = Ids(HashMap::new());
    let mut insert = tx.prepare(
        "INSERT INTO users (id, email, username, password_hash, is_admin, is_active, created_at, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for user in &rows {
        let id = ids.assign(user.id);
        insert.execute(params![
            id,
            user.email,
            user.username,
            user.password_hash,
            i64::from(user.is_admin),
            i64::from(user.is_active),
            when(user.created_at),
            when(user.updated_at),
        ])?;
        if !user.password_hash.starts_with("$2") {
            report.must_reset.push(user.email.clone());
        }
    }
    report.counts.push(("users", rows.len() as u64));
    Ok(ids)
}

async fn documents(
    pool: &PgPool,
    tx: &rusqlite::Transaction<'_>,
    root: &Path,
    uploads: &Path,
    users: &Ids,
    report: &mut Report,
) -> anyhow::Result<Ids> {
    let rows: Vec<DocumentRow> = sqlx::query_as(
        "SELECT id, user_id, title, filename, metadata, namespace, created_at, updated_at \
         FROM documents.documents ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    let mut ids = Ids(HashMap::new());
    let mut insert = tx.prepare(
        "INSERT INTO documents (id, user_id, title, file_path, content, metadata, namespace, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut missing = 0;
    for doc in &rows {
        let Some(user) = users.get(&doc.user_id) else {
            continue;
        };
        let stored = uploads
            .join(doc.user_id.to_string())
            .join(format!("{}.pdf", doc.id));
        let file_path = if stored.is_file() {
            report.files += 1;
            Some(place(root, user, &doc.filename, &stored)?)
        } else {
            missing += 1;
            None
        };
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT text FROM search.chunks WHERE user_id = $1 AND source_kind = 'document' \
             AND source_id = $2 ORDER BY ordinal",
        )
        .bind(doc.user_id)
        .bind(doc.id)
        .fetch_all(pool)
        .await?;
        let id = ids.assign(doc.id);
        insert.execute(params![
            id,
            user,
            doc.title,
            file_path,
            nullable(&texts.join("\n\n")),
            doc.metadata.to_string(),
            doc.namespace,
            when(doc.created_at),
            when(doc.updated_at),
        ])?;
    }
    if missing > 0 {
        report.notes.push(format!(
            "{missing} documents' files were missing from UPLOAD_PATH"
        ));
    }
    report.counts.push(("documents", ids.0.len() as u64));
    Ok(ids)
}

async fn queries(
    pool: &PgPool,
    tx: &rusqlite::Transaction<'_>,
    users: &Ids,
    documents: &Ids,
    report: &mut Report,
) -> anyhow::Result<()> {
    let rows: Vec<QueryRow> = sqlx::query_as(
        "SELECT user_id, query, response, sources, status, created_at FROM inference.queries \
         ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    let mut insert = tx.prepare(
        "INSERT INTO queries (user_id, query_text, response, sources, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut count = 0;
    for query in &rows {
        let Some(user) = users.get(&query.user_id) else {
            continue;
        };
        // The old app's sources: [{document_id, page}], documents only.
        let sources: Vec<serde_json::Value> = query
            .sources
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s.get("source_kind").and_then(|k| k.as_str()) == Some("document"))
            .filter_map(|s| {
                let id = Uuid::parse_str(s.get("source_id")?.as_str()?).ok()?;
                let page = s
                    .get("page")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                Some(serde_json::json!({ "document_id": documents.get(&id)?, "page": page }))
            })
            .collect();
        let response = (query.status == "answered" || !query.response.is_empty())
            .then_some(query.response.as_str());
        insert.execute(params![
            user,
            query.query,
            response,
            (!sources.is_empty()).then(|| serde_json::Value::from(sources).to_string()),
            when(query.created_at),
        ])?;
        count += 1;
    }
    report.counts.push(("queries", count));
    Ok(())
}

async fn accounts(
    pool: &PgPool,
    tx: &rusqlite::Transaction<'_>,
    users: &Ids,
    keys: Option<&KeyRing>,
    report: &mut Report,
) -> anyhow::Result<Ids> {
    let rows: Vec<AccountRow> = sqlx::query_as(
        "SELECT id, user_id, email_address, access_token, refresh_token, key_id, created_at, \
         updated_at FROM mail.email_accounts ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    let mut ids = Ids(HashMap::new());
    let mut insert = tx.prepare(
        "INSERT INTO email_accounts (id, user_id, email_address, access_token, refresh_token, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut sealed = 0;
    for account in &rows {
        let Some(user) = users.get(&account.user_id) else {
            continue;
        };
        let open = |bytes: &[u8], which: &str| {
            keys.and_then(|keys| {
                keys.open_string(
                    &account.key_id,
                    bytes,
                    &token_context(account.user_id, &account.email_address, which),
                )
                .ok()
            })
        };
        let access = open(&account.access_token, "access");
        let refresh = open(&account.refresh_token, "refresh");
        if access.is_none() || refresh.is_none() {
            sealed += 1;
        }
        let id = ids.assign(account.id);
        insert.execute(params![
            id,
            user,
            account.email_address,
            access,
            refresh,
            when(account.created_at),
            when(account.updated_at),
        ])?;
    }
    if sealed > 0 {
        report.notes.push(format!(
            "{sealed} mail accounts' tokens could not be opened (MAIL_TOKEN_ENCRYPTION_KEY unset \
             or another key): exported as NULL, those accounts connect again in the old app"
        ));
    }
    report.counts.push(("email_accounts", ids.0.len() as u64));
    Ok(ids)
}

async fn emails(
    pool: &PgPool,
    tx: &rusqlite::Transaction<'_>,
    root: &Path,
    uploads: &Path,
    users: &Ids,
    accounts: &Ids,
    report: &mut Report,
) -> anyhow::Result<()> {
    let rows: Vec<EmailRow> = sqlx::query_as(
        "SELECT id, user_id, account_id, thread_id, subject, text, classification, sort_at \
         FROM mail.emails ORDER BY sort_at, id",
    )
    .fetch_all(pool)
    .await?;
    let mut ids = Ids(HashMap::new());
    {
        let mut insert = tx.prepare(
            "INSERT INTO emails (id, user_id, email_account_id, thread_id, subject, content, \
             classification, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for email in &rows {
            let (Some(user), Some(account)) =
                (users.get(&email.user_id), accounts.get(&email.account_id))
            else {
                continue;
            };
            let id = ids.assign(email.id);
            insert.execute(params![
                id,
                user,
                account,
                email.thread_id,
                nullable(&email.subject),
                email.text,
                email.classification,
                when(email.sort_at),
            ])?;
        }
    }
    report.counts.push(("emails", ids.0.len() as u64));
    let attachments: Vec<AttachmentRow> = sqlx::query_as(
        "SELECT email_id, user_id, filename, content_type, size, path \
         FROM mail.email_attachments ORDER BY email_id, id",
    )
    .fetch_all(pool)
    .await?;
    let mut insert = tx.prepare(
        "INSERT INTO email_attachments (email_id, filename, file_path, content_type, size) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut count = 0;
    for attachment in &attachments {
        let (Some(email), Some(user)) = (
            ids.get(&attachment.email_id),
            users.get(&attachment.user_id),
        ) else {
            continue;
        };
        let stored = uploads.join("mail").join(&attachment.path);
        let file_path = if !attachment.path.is_empty() && stored.is_file() {
            report.files += 1;
            Some(place(root, user, &attachment.filename, &stored)?)
        } else {
            None
        };
        insert.execute(params![
            email,
            attachment.filename,
            file_path,
            attachment.content_type,
            attachment.size,
        ])?;
        count += 1;
    }
    report.counts.push(("email_attachments", count));
    Ok(())
}
