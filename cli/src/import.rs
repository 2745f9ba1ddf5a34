//! `pai import-sqlite`: brings an older single-user install (its SQLite
//! database and `data/` folder) into pai through the services' own APIs,
//! each writing only its own schema: users (auth), documents (uploaded as
//! their owner, so they are classified, chunked and indexed), query
//! history (inference), mail accounts and emails with their attachments
//! (mail-sync).
//!
//! Each imported row's pai id is derived from the install and the old id
//! (UUID v5), and every import call is idempotent on it; `import.id_map`
//! records what came in, so a repeated run imports nothing twice and a run
//! cut off halfway finishes on the next one.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use pai_common::config::{DatabaseSettings, JwtSettings, ServiceAddrs};
use pai_common::identity::{ServiceCredential, with_bearer};
use pai_common::{Env, JwtKeys, UserContext};
use pai_proto::v1::auth_internal_client::AuthInternalClient;
use pai_proto::v1::document_service_client::DocumentServiceClient;
use pai_proto::v1::inference_internal_client::InferenceInternalClient;
use pai_proto::v1::mail_import_client::MailImportClient;
use pai_proto::v1::upload_request::Part;
use pai_proto::v1::{self as pb};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::old_install::{OldAttachment, OldEmail, OldInstall};

/// The schema `pai import-sqlite` keeps its id map in.
pub const SCHEMA: &str = "import";
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/import");

/// The tables in the order they import (owners first).
pub const TABLES: [&str; 7] = [
    "users",
    "documents",
    "queries",
    "email_accounts",
    "emails",
    "email_attachments",
    "oauth_sessions",
];

const UPLOAD_CHUNK: usize = 64 * 1024;
const QUERY_BATCH: usize = 100;
const EMAIL_BATCH: usize = 50;
/// How long the import waits for its documents to be indexed.
const INDEX_WAIT: Duration = Duration::from_secs(1800);

#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub data: PathBuf,
    pub dry_run: bool,
    /// Wait until every imported document is indexed (or failed).
    pub wait: bool,
    /// A pause after each call to a service, to spare a busy server.
    pub pace: Duration,
}

/// What happened to one old table's rows.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableReport {
    pub read: u64,
    /// Brought in by this run (or, in a dry run, that would be).
    pub imported: u64,
    /// Brought in by an earlier run.
    pub already: u64,
    pub skipped: Vec<Skipped>,
    /// How long the table took.
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub old_id: i64,
    pub reason: String,
}

/// A run's report: per table, then the check against PostgreSQL.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub source: String,
    pub dry_run: bool,
    pub tables: Vec<(String, TableReport)>,
    /// (table, expected rows in PostgreSQL, found); empty in a dry run.
    pub verification: Vec<(String, u64, u64)>,
    /// Documents by ingest state once the wait ended.
    pub documents_indexed: u64,
    pub documents_failed: u64,
    /// How long the wait for the documents' indexing took.
    pub indexing_seconds: f64,
}

impl Report {
    pub fn table(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|(t, _)| t == name).map(|(_, r)| r)
    }

    /// Whether every count PostgreSQL holds matches the id map.
    pub fn verified(&self) -> bool {
        self.verification.iter().all(|(_, want, got)| want == got)
    }

    /// The report as printed at the end of a run.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>13} {:>8} {:>8} {:>9}",
            "table", "read", verb, "already", "skipped", "seconds"
        );
        for (name, t) in &self.tables {
            let _ = writeln!(
                out,
                "{name:<18} {:>7} {:>13} {:>8} {:>8} {:>9.1}",
                t.read,
                t.imported,
                t.already,
                t.skipped.len(),
                t.seconds
            );
        }
        let skipped: Vec<_> = self
            .tables
            .iter()
            .flat_map(|(name, t)| t.skipped.iter().map(move |s| (name, s)))
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(out, "\nskipped rows:");
            for (name, s) in skipped {
                let _ = writeln!(out, "  {name} {}: {}", s.old_id, s.reason);
            }
        }
        if self.dry_run {
            let _ = writeln!(out, "\ndry run: nothing was written");
            return out;
        }
        let _ = writeln!(
            out,
            "\nverification (rows in PostgreSQL / rows the import brought in):"
        );
        for (name, want, got) in &self.verification {
            let mark = if want == got { "ok" } else { "MISMATCH" };
            let _ = writeln!(out, "  {name:<18} {got:>7} / {want:<7} {mark}");
        }
        let _ = writeln!(
            out,
            "documents: {} indexed, {} failed ({:.1} s waiting for the index)",
            self.documents_indexed, self.documents_failed, self.indexing_seconds
        );
        out
    }
}

type Credentialed = InterceptedService<Channel, ServiceCredential>;

struct Clients {
    auth: AuthInternalClient<Credentialed>,
    documents: DocumentServiceClient<Channel>,
    inference: InferenceInternalClient<Credentialed>,
    mail: MailImportClient<Credentialed>,
    keys: Arc<JwtKeys>,
}

impl Clients {
    fn connect(env: &Env) -> anyhow::Result<Self> {
        let jwt = JwtSettings::from_env(env)?;
        let addrs = ServiceAddrs::from_env(env)?;
        let keys = Arc::new(JwtKeys::new(&jwt));
        let credential = || ServiceCredential::new(Arc::clone(&keys), "import");
        let channel = |url: &str| {
            pai_common::grpc::channel(url).with_context(|| format!("service address {url:?}"))
        };
        Ok(Self {
            auth: AuthInternalClient::with_interceptor(channel(&addrs.auth_url)?, credential()),
            documents: DocumentServiceClient::new(channel(&addrs.documents_url)?)
                .max_encoding_message_size(UPLOAD_CHUNK * 2),
            inference: InferenceInternalClient::with_interceptor(
                channel(&addrs.inference_url)?,
                credential(),
            ),
            mail: MailImportClient::with_interceptor(channel(&addrs.mail_url)?, credential())
                .max_encoding_message_size(256 * 1024 * 1024),
            keys: Arc::clone(&keys),
        })
    }

    /// An access token of `user_id`, for the user-scoped upload.
    fn as_user(&self, user_id: Uuid, is_admin: bool) -> String {
        self.keys.issue_access(&UserContext {
            user_id,
            session_id: Uuid::new_v4(),
            is_admin,
        })
    }
}

/// The id map: old rows of this install already brought in.
struct IdMap {
    pool: Option<PgPool>,
    source: String,
    ids: HashMap<(&'static str, i64), Uuid>,
}

impl IdMap {
    async fn load(pool: Option<PgPool>, source: &str) -> anyhow::Result<Self> {
        let mut ids = HashMap::new();
        if let Some(pool) = &pool {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('import.id_map') IS NOT NULL")
                    .fetch_one(pool)
                    .await?;
            if exists {
                let rows: Vec<(String, i64, Uuid)> = sqlx::query_as(
                    "SELECT kind, old_id, new_id FROM import.id_map WHERE source = $1",
                )
                .bind(source)
                .fetch_all(pool)
                .await?;
                for (kind, old_id, new_id) in rows {
                    if let Some(kind) = TABLES.iter().find(|t| **t == kind) {
                        ids.insert((*kind, old_id), new_id);
                    }
                }
            }
        }
        Ok(Self {
            pool,
            source: source.to_owned(),
            ids,
        })
    }

    fn get(&self, kind: &'static str, old_id: i64) -> Option<Uuid> {
        self.ids.get(&(kind, old_id)).copied()
    }

    /// The pai id an old row gets: the same on every run.
    fn derive(&self, kind: &str, old_id: i64) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("pai-import:{}:{kind}:{old_id}", self.source).as_bytes(),
        )
    }

    async fn record(&mut self, kind: &'static str, rows: &[(i64, Uuid)]) -> anyhow::Result<()> {
        if let Some(pool) = &self.pool
            && !rows.is_empty()
        {
            let (old, new): (Vec<i64>, Vec<Uuid>) = rows.iter().copied().unzip();
            sqlx::query(
                "INSERT INTO import.id_map (source, kind, old_id, new_id) \
                 SELECT $1, $2, * FROM unnest($3::bigint[], $4::uuid[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&self.source)
            .bind(kind)
            .bind(&old)
            .bind(&new)
            .execute(pool)
            .await
            .context("recording imported rows in import.id_map")?;
        }
        for (old_id, new_id) in rows {
            self.ids.insert((kind, *old_id), *new_id);
        }
        Ok(())
    }

    fn mapped(&self, kind: &'static str) -> Vec<Uuid> {
        self.ids
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, id)| *id)
            .collect()
    }
}

/// Progress: a bar on a terminal, a line per tenth otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    table: &'static str,
    total: u64,
    done: u64,
}

impl Progress {
    fn new(table: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{prefix:>18} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(table);
            bar
        });
        if bar.is_none() {
            eprintln!("import: {table}: {total} rows");
        }
        Self {
            bar,
            table,
            total,
            done: 0,
        }
    }

    fn advance(&mut self, n: u64) {
        let before = self.done;
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                let step = (self.total / 10).max(1);
                if before / step != self.done / step || self.done == self.total {
                    eprintln!("import: {}: {}/{}", self.table, self.done, self.total);
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A fingerprint of the install: its first user's row, so the same
/// install maps to the same pai ids wherever its file lies.
fn fingerprint(old: &OldInstall) -> anyhow::Result<String> {
    let users = old.users()?;
    let first = users.first();
    let mut hash = Sha256::new();
    if let Some(user) = first {
        hash.update(user.id.to_le_bytes());
        hash.update(user.email.as_deref().unwrap_or("").as_bytes());
        hash.update(user.username.as_deref().unwrap_or("").as_bytes());
        hash.update(user.password_hash.as_deref().unwrap_or("").as_bytes());
    }
    Ok(hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Where an old row's file is: its path as stored (absolute, or relative
/// to the install, the folder above `data/`, or to `data/`), else a file of
/// that name in the owner's upload folder.
fn locate(data: &Path, stored: &str, owner: Option<i64>) -> Option<PathBuf> {
    let stored_path = Path::new(stored);
    let root = data.parent().unwrap_or(data);
    let mut candidates = vec![
        stored_path.to_path_buf(),
        root.join(stored_path),
        data.join(stored_path),
    ];
    if let (Some(name), Some(owner)) = (stored_path.file_name(), owner) {
        candidates.push(data.join("uploads").join(owner.to_string()).join(name));
    }
    candidates.into_iter().find(|path| path.is_file())
}

fn timestamp(at: Option<DateTime<Utc>>) -> Option<pai_proto::Timestamp> {
    at.and_then(pai_common::time::to_proto)
}

fn status_reason(status: &tonic::Status) -> String {
    format!("refused: {}", status.message())
}

/// Runs the import (or, with `dry_run`, says what it would do).
pub async fn run(env: &Env, options: &Options) -> anyhow::Result<Report> {
    if !options.data.is_dir() {
        bail!("--data {}: not a folder", options.data.display());
    }
    let old = OldInstall::open(&options.db)?;
    let source = fingerprint(&old)?;
    let settings = DatabaseSettings::from_env(env)?;
    let pool = pai_common::db::pool(&settings)?;
    if !options.dry_run {
        pai_common::db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
    }
    let mut map = IdMap::load(Some(pool.clone()), &source).await?;
    if options.dry_run {
        map.pool = None;
    }
    let clients = if options.dry_run {
        None
    } else {
        Some(Clients::connect(env)?)
    };
    let mut run = Run {
        old: &old,
        data: &options.data,
        pace: options.pace,
        map,
        clients,
        report: Report {
            source: source.clone(),
            dry_run: options.dry_run,
            ..Report::default()
        },
    };
    run.users().await?;
    run.documents().await?;
    run.queries().await?;
    run.accounts().await?;
    run.emails().await?;
    let sessions = old.oauth_sessions()?;
    run.report.tables.push((
        "oauth_sessions".into(),
        TableReport {
            read: sessions.len() as u64,
            skipped: sessions
                .into_iter()
                .map(|old_id| Skipped {
                    old_id,
                    reason: "a Gmail connect begun in the old app: nothing can finish it".into(),
                })
                .collect(),
            ..TableReport::default()
        },
    ));
    if !options.dry_run {
        if options.wait {
            run.wait_for_documents(&pool).await?;
        }
        run.verify(&pool).await?;
    }
    Ok(run.report)
}

struct Run<'a> {
    old: &'a OldInstall,
    data: &'a Path,
    pace: Duration,
    map: IdMap,
    clients: Option<Clients>,
    report: Report,
}

impl Run<'_> {
    async fn pause(&self) {
        if !self.pace.is_zero() {
            tokio::time::sleep(self.pace).await;
        }
    }

    fn push(&mut self, table: &str, mut report: TableReport, started: std::time::Instant) {
        report.seconds = started.elapsed().as_secs_f64();
        self.report.tables.push((table.to_owned(), report));
    }

    async fn users(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let users = self.old.users()?;
        let mut report = TableReport {
            read: users.len() as u64,
            ..TableReport::default()
        };
        let mut progress = Progress::new("users", report.read);
        let mut emails: HashMap<String, i64> = HashMap::new();
        let mut usernames: HashMap<String, i64> = HashMap::new();
        for user in users {
            progress.advance(1);
            let skip = |reason: String| Skipped {
                old_id: user.id,
                reason,
            };
            let email = user.email.as_deref().map(str::trim).unwrap_or("");
            let Some(hash) = user.password_hash.as_deref().filter(|h| !h.is_empty()) else {
                report.skipped.push(skip("no password hash".into()));
                continue;
            };
            if email.is_empty() {
                report.skipped.push(skip("no email address".into()));
                continue;
            }
            if let Some(first) = emails.get(&email.to_lowercase()) {
                report.skipped.push(skip(format!(
                    "email differs from user {first}'s only in case"
                )));
                continue;
            }
            let username = user
                .username
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| email.split('@').next().unwrap_or(email))
                .to_owned();
            if let Some(first) = usernames.get(&username.to_lowercase()) {
                report.skipped.push(skip(format!(
                    "username differs from user {first}'s only in case"
                )));
                continue;
            }
            emails.insert(email.to_lowercase(), user.id);
            usernames.insert(username.to_lowercase(), user.id);
            if self.map.get("users", user.id).is_some() {
                report.already += 1;
                continue;
            }
            let id = self.map.derive("users", user.id);
            let Some(clients) = &mut self.clients else {
                report.imported += 1;
                self.map.record("users", &[(user.id, id)]).await?;
                continue;
            };
            let request = pb::ImportUserRequest {
                id: id.to_string(),
                email: email.to_owned(),
                username,
                password_hash: hash.to_owned(),
                is_admin: user.is_admin,
                is_active: user.is_active,
                created_at: timestamp(user.created_at),
                updated_at: timestamp(user.updated_at),
            };
            match clients.auth.import_user(request).await {
                Ok(response) => {
                    let response = response.into_inner();
                    if response.created {
                        report.imported += 1;
                    } else {
                        report.already += 1;
                    }
                    self.map.record("users", &[(user.id, id)]).await?;
                    self.pause().await;
                }
                Err(status)
                    if matches!(status.code(), Code::AlreadyExists | Code::InvalidArgument) =>
                {
                    report.skipped.push(skip(status_reason(&status)));
                }
                Err(status) => return Err(status).context("auth ImportUser"),
            }
        }
        self.push("users", report, started);
        Ok(())
    }

    /// The pai user of an old user id, if that user came in (or, in a
    /// dry run, would).
    fn owner(&self, old_user: Option<i64>) -> Result<Uuid, String> {
        let Some(old_user) = old_user else {
            return Err("it has no owner".into());
        };
        self.map
            .get("users", old_user)
            .ok_or_else(|| format!("its owner (user {old_user}) was not imported"))
    }

    async fn documents(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let documents = self.old.documents()?;
        let mut report = TableReport {
            read: documents.len() as u64,
            ..TableReport::default()
        };
        let mut progress = Progress::new("documents", report.read);
        for doc in documents {
            progress.advance(1);
            let skip = |reason: String| Skipped {
                old_id: doc.id,
                reason,
            };
            let owner = match self.owner(doc.user_id) {
                Ok(owner) => owner,
                Err(reason) => {
                    report.skipped.push(skip(reason));
                    continue;
                }
            };
            if self.map.get("documents", doc.id).is_some() {
                report.already += 1;
                continue;
            }
            let stored = doc.file_path.as_deref().unwrap_or("");
            let Some(path) = locate(self.data, stored, doc.user_id).filter(|_| !stored.is_empty())
            else {
                report
                    .skipped
                    .push(skip(format!("its file is missing ({stored})")));
                continue;
            };
            let id = self.map.derive("documents", doc.id);
            let Some(clients) = &mut self.clients else {
                report.imported += 1;
                self.map.record("documents", &[(doc.id, id)]).await?;
                continue;
            };
            let bytes = tokio::fs::read(&path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            let filename = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "document.pdf".into());
            let metadata = UploadInfo {
                filename,
                title: doc.title.clone().unwrap_or_default(),
                imported: pb::ImportedDocument {
                    id: id.to_string(),
                    created_at: timestamp(doc.created_at),
                    updated_at: timestamp(doc.updated_at),
                    metadata_json: doc
                        .metadata
                        .clone()
                        .filter(|m| {
                            serde_json::from_str::<serde_json::Value>(m)
                                .is_ok_and(|v| v.is_object())
                        })
                        .unwrap_or_default(),
                    namespace: doc.namespace.clone().unwrap_or_default(),
                },
            };
            let token = clients.as_user(owner, false);
            match upload(&mut clients.documents, &token, metadata, bytes).await {
                Ok(_) => {
                    report.imported += 1;
                    self.map.record("documents", &[(doc.id, id)]).await?;
                    self.pause().await;
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::InvalidArgument | Code::FailedPrecondition | Code::AlreadyExists
                    ) =>
                {
                    report.skipped.push(skip(status_reason(&status)));
                }
                Err(status) => return Err(status).context("documents Upload"),
            }
        }
        self.push("documents", report, started);
        Ok(())
    }

    async fn queries(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let queries = self.old.queries()?;
        let titles = self.document_titles()?;
        let mut report = TableReport {
            read: queries.len() as u64,
            ..TableReport::default()
        };
        let mut progress = Progress::new("queries", report.read);
        let mut batch: Vec<(i64, Uuid, pb::ImportedQuery)> = Vec::new();
        for query in queries {
            progress.advance(1);
            let skip = |reason: String| Skipped {
                old_id: query.id,
                reason,
            };
            let owner = match self.owner(query.user_id) {
                Ok(owner) => owner,
                Err(reason) => {
                    report.skipped.push(skip(reason));
                    continue;
                }
            };
            let Some(text) = query.query_text.clone().filter(|q| !q.trim().is_empty()) else {
                report.skipped.push(skip("no question text".into()));
                continue;
            };
            if self.map.get("queries", query.id).is_some() {
                report.already += 1;
                continue;
            }
            let id = self.map.derive("queries", query.id);
            batch.push((
                query.id,
                id,
                pb::ImportedQuery {
                    id: id.to_string(),
                    user_id: owner.to_string(),
                    query: text,
                    response: query.response.clone().unwrap_or_default(),
                    sources: self.sources(query.sources.as_deref(), &titles),
                    created_at: timestamp(query.created_at),
                },
            ));
            if batch.len() == QUERY_BATCH {
                report.imported += self.send_queries(std::mem::take(&mut batch)).await?;
            }
        }
        report.imported += self.send_queries(batch).await?;
        self.push("queries", report, started);
        Ok(())
    }

    /// Old document id → (pai id, title), for the sources of queries.
    fn document_titles(&self) -> anyhow::Result<HashMap<i64, (Uuid, String)>> {
        Ok(self
            .old
            .documents()?
            .into_iter()
            .filter_map(|doc| {
                let id = self.map.get("documents", doc.id)?;
                let title = doc
                    .title
                    .clone()
                    .or_else(|| {
                        doc.file_path
                            .as_deref()
                            .and_then(|p| Path::new(p).file_stem())
                            .map(|s| s.to_string_lossy().into_owned())
                    })
                    .unwrap_or_default();
                Some((doc.id, (id, title)))
            })
            .collect())
    }

    /// The old app's sources (`[{document_id, page}]`) as pai's, for the
    /// documents that came in.
    fn sources(
        &self,
        json: Option<&str>,
        titles: &HashMap<i64, (Uuid, String)>,
    ) -> Vec<pb::AnswerSource> {
        let Some(items) = json
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
            .and_then(|v| v.as_array().cloned())
        else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let old = item.get("document_id")?.as_i64()?;
                let (id, title) = titles.get(&old)?;
                Some((id, title, item.get("page").and_then(|p| p.as_u64())))
            })
            .enumerate()
            .map(|(n, (id, title, page))| pb::AnswerSource {
                n: u32::try_from(n + 1).unwrap_or(u32::MAX),
                source_kind: "document".into(),
                source_id: id.to_string(),
                title: title.clone(),
                page: page.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
                snippet: String::new(),
                score: 0.0,
                cited: true,
            })
            .collect()
    }

    async fn send_queries(
        &mut self,
        batch: Vec<(i64, Uuid, pb::ImportedQuery)>,
    ) -> anyhow::Result<u64> {
        let (ids, queries) = split(batch);
        if let Some(clients) = &mut self.clients
            && !queries.is_empty()
        {
            clients
                .inference
                .import_queries(pb::ImportQueriesRequest { queries })
                .await
                .context("inference ImportQueries")?;
        }
        self.map.record("queries", &ids).await?;
        if !ids.is_empty() {
            self.pause().await;
        }
        Ok(ids.len() as u64)
    }

    async fn accounts(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let accounts = self.old.accounts()?;
        let mut report = TableReport {
            read: accounts.len() as u64,
            ..TableReport::default()
        };
        let mut progress = Progress::new("email_accounts", report.read);
        let mut seen: HashMap<(i64, String), i64> = HashMap::new();
        for account in accounts {
            progress.advance(1);
            let skip = |reason: String| Skipped {
                old_id: account.id,
                reason,
            };
            let owner = match self.owner(account.user_id) {
                Ok(owner) => owner,
                Err(reason) => {
                    report.skipped.push(skip(reason));
                    continue;
                }
            };
            let address = account
                .email_address
                .as_deref()
                .unwrap_or("")
                .trim()
                .to_lowercase();
            if !address.contains('@') {
                report.skipped.push(skip("no email address".into()));
                continue;
            }
            let key = (account.user_id.unwrap_or_default(), address.clone());
            if let Some(first) = seen.get(&key) {
                report.skipped.push(skip(format!(
                    "the same address as account {first} (compared without regard to case)"
                )));
                continue;
            }
            seen.insert(key, account.id);
            if self.map.get("email_accounts", account.id).is_some() {
                report.already += 1;
                continue;
            }
            let id = self.map.derive("email_accounts", account.id);
            let Some(clients) = &mut self.clients else {
                report.imported += 1;
                self.map
                    .record("email_accounts", &[(account.id, id)])
                    .await?;
                continue;
            };
            let request = pb::ImportAccountRequest {
                id: id.to_string(),
                user_id: owner.to_string(),
                email_address: address,
                access_token: account.access_token.clone().unwrap_or_default(),
                refresh_token: account.refresh_token.clone().unwrap_or_default(),
                created_at: timestamp(account.created_at),
            };
            match clients.mail.import_account(request).await {
                Ok(response) => {
                    if response.into_inner().created {
                        report.imported += 1;
                    } else {
                        report.already += 1;
                    }
                    self.map
                        .record("email_accounts", &[(account.id, id)])
                        .await?;
                    self.pause().await;
                }
                Err(status) if status.code() == Code::InvalidArgument => {
                    report.skipped.push(skip(status_reason(&status)));
                }
                Err(status) => return Err(status).context("mail-sync ImportAccount"),
            }
        }
        self.push("email_accounts", report, started);
        Ok(())
    }

    async fn emails(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let emails = self.old.emails()?;
        let attachments = self.old.attachments()?;
        let mut by_email: HashMap<i64, Vec<OldAttachment>> = HashMap::new();
        let mut attachment_report = TableReport {
            read: attachments.len() as u64,
            ..TableReport::default()
        };
        for attachment in attachments {
            match attachment.email_id {
                Some(email) => by_email.entry(email).or_default().push(attachment),
                None => attachment_report.skipped.push(Skipped {
                    old_id: attachment.id,
                    reason: "it belongs to no email".into(),
                }),
            }
        }
        let mut report = TableReport {
            read: emails.len() as u64,
            ..TableReport::default()
        };
        let mut progress = Progress::new("emails", report.read);
        // Per account, in batches.
        let mut batches: HashMap<Uuid, Vec<(i64, Uuid, pb::ImportedEmail)>> = HashMap::new();
        for email in emails {
            progress.advance(1);
            let skip = |reason: String| Skipped {
                old_id: email.id,
                reason,
            };
            let account = email
                .account_id
                .and_then(|a| self.map.get("email_accounts", a));
            let Some(account) = account else {
                report.skipped.push(skip(format!(
                    "its account ({}) was not imported",
                    email.account_id.map_or("none".into(), |a| a.to_string())
                )));
                for attachment in by_email.remove(&email.id).unwrap_or_default() {
                    attachment_report.skipped.push(Skipped {
                        old_id: attachment.id,
                        reason: format!("its email ({}) was not imported", email.id),
                    });
                }
                continue;
            };
            let old_attachments = by_email.remove(&email.id).unwrap_or_default();
            if self.map.get("emails", email.id).is_some() {
                report.already += 1;
                attachment_report.already += old_attachments.len() as u64;
                continue;
            }
            let files = self.attachment_files(&email, old_attachments, &mut attachment_report);
            let id = self.map.derive("emails", email.id);
            let batch = batches.entry(account).or_default();
            batch.push((email.id, id, imported_email(&email, id, files)));
            if batch.len() == EMAIL_BATCH
                && let Some(batch) = batches.remove(&account)
            {
                report.imported += self.send_emails(account, batch).await?;
            }
        }
        for (account, batch) in std::mem::take(&mut batches) {
            report.imported += self.send_emails(account, batch).await?;
        }
        for (email, rest) in by_email {
            for attachment in rest {
                attachment_report.skipped.push(Skipped {
                    old_id: attachment.id,
                    reason: format!("its email ({email}) is not in the install"),
                });
            }
        }
        self.push("emails", report, started);
        self.push("email_attachments", attachment_report, started);
        Ok(())
    }

    /// Reads an email's attachment files; a missing one is skipped.
    fn attachment_files(
        &self,
        email: &OldEmail,
        attachments: Vec<OldAttachment>,
        report: &mut TableReport,
    ) -> Vec<pb::ImportedAttachment> {
        let mut files = Vec::new();
        for attachment in attachments {
            let stored = attachment.file_path.as_deref().unwrap_or("");
            let data = locate(self.data, stored, email.user_id)
                .filter(|_| !stored.is_empty())
                .and_then(|path| std::fs::read(path).ok());
            let Some(data) = data else {
                report.skipped.push(Skipped {
                    old_id: attachment.id,
                    reason: format!("its file is missing ({stored})"),
                });
                continue;
            };
            report.imported += 1;
            files.push(pb::ImportedAttachment {
                filename: attachment
                    .filename
                    .clone()
                    .unwrap_or_else(|| "attachment".into()),
                content_type: attachment
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                data: if self.clients.is_some() {
                    data
                } else {
                    Vec::new()
                },
            });
        }
        files
    }

    async fn send_emails(
        &mut self,
        account: Uuid,
        batch: Vec<(i64, Uuid, pb::ImportedEmail)>,
    ) -> anyhow::Result<u64> {
        let (ids, emails) = split(batch);
        if let Some(clients) = &mut self.clients
            && !emails.is_empty()
        {
            clients
                .mail
                .import_emails(pb::ImportEmailsRequest {
                    account_id: account.to_string(),
                    emails,
                })
                .await
                .context("mail-sync ImportEmails")?;
        }
        self.map.record("emails", &ids).await?;
        if !ids.is_empty() {
            self.pause().await;
        }
        Ok(ids.len() as u64)
    }

    /// Waits until every imported document is indexed or failed.
    async fn wait_for_documents(&mut self, pool: &PgPool) -> anyhow::Result<()> {
        let ids = self.map.mapped("documents");
        let total = ids.len() as u64;
        let mut progress = Progress::new("indexing", total);
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + INDEX_WAIT;
        loop {
            let (indexed, failed): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'indexed'), \
                        count(*) FILTER (WHERE status = 'failed') \
                 FROM documents.documents WHERE id = ANY($1)",
            )
            .bind(&ids)
            .fetch_one(pool)
            .await?;
            let done = u64::try_from(indexed + failed).unwrap_or(0);
            if done > progress.done {
                progress.advance(done - progress.done);
            }
            self.report.documents_indexed = u64::try_from(indexed).unwrap_or(0);
            self.report.documents_failed = u64::try_from(failed).unwrap_or(0);
            if done >= total {
                self.report.indexing_seconds = started.elapsed().as_secs_f64();
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} of {total} documents still not indexed after {INDEX_WAIT:?}",
                    total - done
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Counts in PostgreSQL the rows the id map says came in.
    async fn verify(&mut self, pool: &PgPool) -> anyhow::Result<()> {
        const TABLES: [(&str, &str); 5] = [
            ("users", "auth.users"),
            ("documents", "documents.documents"),
            ("queries", "inference.queries"),
            ("email_accounts", "mail.email_accounts"),
            ("emails", "mail.emails"),
        ];
        for (kind, table) in TABLES {
            let ids = self.map.mapped(kind);
            let found: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE id = ANY($1)"))
                    .bind(&ids)
                    .fetch_one(pool)
                    .await
                    .with_context(|| format!("counting {table}"))?;
            self.report.verification.push((
                kind.to_owned(),
                ids.len() as u64,
                u64::try_from(found).unwrap_or(0),
            ));
        }
        Ok(())
    }
}

/// A batch's (old id, new id) pairs and its messages.
fn split<T>(batch: Vec<(i64, Uuid, T)>) -> (Vec<(i64, Uuid)>, Vec<T>) {
    batch
        .into_iter()
        .map(|(old, new, message)| ((old, new), message))
        .unzip()
}

fn imported_email(
    email: &OldEmail,
    id: Uuid,
    attachments: Vec<pb::ImportedAttachment>,
) -> pb::ImportedEmail {
    pb::ImportedEmail {
        id: id.to_string(),
        thread_id: email
            .thread_id
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("imported-{}", email.id)),
        subject: email.subject.clone().unwrap_or_default(),
        text: email.content.clone().unwrap_or_default(),
        classification: email.classification.clone().unwrap_or_default(),
        created_at: timestamp(email.created_at),
        attachments,
    }
}

struct UploadInfo {
    filename: String,
    title: String,
    imported: pb::ImportedDocument,
}

/// Uploads a file as its owner, as the gateway does: metadata, the bytes,
/// the end marker.
async fn upload(
    client: &mut DocumentServiceClient<Channel>,
    token: &str,
    info: UploadInfo,
    bytes: Vec<u8>,
) -> Result<pb::Document, tonic::Status> {
    let total = bytes.len() as u64;
    let mut messages = vec![pb::UploadRequest {
        part: Some(Part::Metadata(pb::UploadMetadata {
            filename: info.filename,
            content_type: "application/pdf".into(),
            title: info.title,
            imported: Some(info.imported),
        })),
    }];
    messages.extend(bytes.chunks(UPLOAD_CHUNK).map(|chunk| pb::UploadRequest {
        part: Some(Part::Data(chunk.to_vec())),
    }));
    messages.push(pb::UploadRequest {
        part: Some(Part::End(pb::UploadEnd { bytes: total })),
    });
    let request = with_bearer(tonic::Request::new(futures::stream::iter(messages)), token);
    Ok(client.upload(request).await?.into_inner())
}
