//! `make bench-import`: `pai import-sqlite` of an older install built by
//! `scripts/make-old-install.py` (default 100 users, 2,000 PDFs, 50,000
//! emails, 5,000 queries) into a whole stack in one release process,
//! against two references measured in this same run:
//!
//! - rows/s of users, queries and emails, against the same rows written by
//!   one `COPY` per table into pai's tables on a scratch database (the
//!   database's own limit);
//! - pages/s of documents (from the first upload until every document is
//!   indexed or failed), against the same PDFs (a sample of `SAMPLE`)
//!   uploaded through the REST API by one user and indexed.
//!
//! ```text
//! cargo run --release -p pai --example bench_import [USERS DOCUMENTS EMAILS QUERIES]
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use common::Bench;
use pai::old_install::OldInstall;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// PDFs the API reference uploads.
const SAMPLE: usize = 200;
const MAIL_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn arg(n: usize, default: u64) -> anyhow::Result<u64> {
    std::env::args()
        .nth(n)
        .map_or(Ok(default), |a| a.parse().context("counts are numbers"))
}

fn build_install(
    folder: &Path,
    users: u64,
    documents: u64,
    emails: u64,
    queries: u64,
) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-old-install.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg("--out")
        .arg(folder)
        .args(["--users", &users.to_string()])
        .args(["--documents", &documents.to_string()])
        .args(["--emails", &emails.to_string()])
        .args(["--queries", &queries.to_string()])
        .status()?;
    if !status.success() {
        bail!("make-old-install.py failed");
    }
    Ok(())
}

/// A CSV field (NULL when `None`).
fn csv(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some(text) => format!("\"{}\"", text.replace('\0', "").replace('"', "\"\"")),
    }
}

fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "now".to_owned(), |at| at.to_rfc3339())
}

/// Rows/s of one `COPY ... FROM STDIN (FORMAT csv)` of `rows`.
async fn copy(conn: &mut PgConnection, statement: &str, rows: &[String]) -> anyhow::Result<f64> {
    let mut body = String::new();
    for row in rows {
        body.push_str(row);
        body.push('\n');
    }
    let started = Instant::now();
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(body.into_bytes()).await?;
    let written = copy.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    if written as usize != rows.len() {
        bail!("{statement}: {written} of {} rows", rows.len());
    }
    Ok(rows.len() as f64 / seconds)
}

/// The same users, queries and emails written by one COPY per table into
/// pai's tables on a scratch database; rows/s of each.
async fn copy_rates(bench: &Bench, old: &OldInstall) -> anyhow::Result<(f64, f64, f64)> {
    let url = bench.env.get("DATABASE_URL").context("DATABASE_URL")?;
    let scratch = format!("pai_bench_copy_{}", Uuid::new_v4().simple());
    let scratch_url = pai_common::db::with_database(url, &scratch);
    let env = bench.env.clone().with("DATABASE_URL", scratch_url.clone());
    pai::stack::migrate(&env, &pai::stack::Service::ALL).await?;
    let mut conn = PgConnection::connect(&scratch_url).await?;
    let users: Vec<_> = old.users()?;
    let user_ids: std::collections::HashMap<i64, Uuid> =
        users.iter().map(|u| (u.id, Uuid::new_v4())).collect();
    let user_rows: Vec<String> = users
        .iter()
        .map(|u| {
            format!(
                "{},{},{},{},{},{},{},{}",
                user_ids[&u.id],
                csv(u
                    .email
                    .as_deref()
                    .map(|e| format!("{}-{}", u.id, e))
                    .as_deref()),
                csv(Some(&format!(
                    "{}-{}",
                    u.id,
                    u.username.clone().unwrap_or_default()
                ))),
                csv(u.password_hash.as_deref()),
                u.is_admin,
                u.is_active,
                when(u.created_at),
                when(u.updated_at)
            )
        })
        .collect();
    let users_rate = copy(
        &mut conn,
        "COPY auth.users (id, email, username, password_hash, is_admin, is_active, created_at, \
         updated_at) FROM STDIN (FORMAT csv)",
        &user_rows,
    )
    .await?;
    let query_rows: Vec<String> = old
        .queries()?
        .iter()
        .map(|q| {
            let answered = q.response.is_some();
            format!(
                "{},{},{},{},{},{},{},{}",
                Uuid::new_v4(),
                user_ids
                    .get(&q.user_id.unwrap_or_default())
                    .copied()
                    .unwrap_or_default(),
                csv(q.query_text.as_deref()),
                csv(Some(q.response.as_deref().unwrap_or(""))),
                csv(Some("[]")),
                if answered { "answered" } else { "failed" },
                csv(Some("")),
                when(q.created_at)
            )
        })
        .collect();
    let queries_rate = copy(
        &mut conn,
        "COPY inference.queries (id, user_id, query, response, sources, status, error, created_at) \
         FROM STDIN (FORMAT csv)",
        &query_rows,
    )
    .await?;
    let accounts = old.accounts()?;
    let account_ids: std::collections::HashMap<i64, (Uuid, Uuid)> = accounts
        .iter()
        .map(|a| {
            let owner = user_ids
                .get(&a.user_id.unwrap_or_default())
                .copied()
                .unwrap_or_default();
            (a.id, (Uuid::new_v4(), owner))
        })
        .collect();
    let account_rows: Vec<String> = accounts
        .iter()
        .map(|a| {
            let (id, owner) = account_ids[&a.id];
            format!(
                "{id},{owner},{},\\x00,\\x00,k,now",
                csv(Some(&format!(
                    "{}-{}",
                    a.id,
                    a.email_address.clone().unwrap_or_default()
                )))
            )
        })
        .collect();
    copy(
        &mut conn,
        "COPY mail.email_accounts (id, user_id, email_address, access_token, refresh_token, \
         key_id, token_expires_at) FROM STDIN (FORMAT csv)",
        &account_rows,
    )
    .await?;
    let email_rows: Vec<String> = old
        .emails()?
        .iter()
        .filter_map(|e| {
            let (account, owner) = *account_ids.get(&e.account_id?)?;
            let id = Uuid::new_v4();
            Some(format!(
                "{id},{owner},{account},{},{},{},{},{},{}",
                csv(Some(&format!("imported:{id}"))),
                csv(e.thread_id.as_deref()),
                csv(Some(e.subject.as_deref().unwrap_or(""))),
                when(e.created_at),
                csv(Some(e.classification.as_deref().unwrap_or("personal"))),
                csv(Some(e.content.as_deref().unwrap_or("")))
            ))
        })
        .collect();
    let emails_rate = copy(
        &mut conn,
        "COPY mail.emails (id, user_id, account_id, provider_id, thread_id, subject, sort_at, \
         classification, text) FROM STDIN (FORMAT csv)",
        &email_rows,
    )
    .await?;
    conn.close().await?;
    let mut admin = PgConnection::connect(url).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok((users_rate, queries_rate, emails_rate))
}

/// Pages/s of the sample PDFs uploaded through the REST API and indexed.
async fn api_rate(bench: &Bench, files: &[PathBuf]) -> anyhow::Result<(f64, usize)> {
    let client = bench.user("apireference").await?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for file in files {
        ids.push(client.upload(file).await?);
    }
    let documents = client.wait_all(&ids).await?;
    let seconds = started.elapsed().as_secs_f64();
    let pages: u64 = documents.iter().filter_map(|d| d["pages"].as_u64()).sum();
    Ok((pages as f64 / seconds, files.len()))
}

fn row(metric: &str, import: f64, reference: f64, unit: &str) {
    println!(
        "| {metric:<34} | {import:>10.1} | {reference:>10.1} | {:>6.3} | {unit}",
        import / reference
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = arg(1, 100)?;
    let documents = arg(2, 2000)?;
    let emails = arg(3, 50_000)?;
    let queries = arg(4, 5000)?;
    let folder = std::env::temp_dir().join(format!("pai-bench-import-{}", Uuid::new_v4().simple()));
    eprintln!(
        "bench-import: building an old install ({users} users, {documents} PDFs, {emails} emails, {queries} queries)"
    );
    build_install(&folder, users, documents, emails, queries)?;
    let old = OldInstall::open(&folder.join("pai.db"))?;

    let bench = Bench::start_with(&[("MAIL_TOKEN_ENCRYPTION_KEY", MAIL_KEY.to_owned())]).await?;
    let stack = bench.stack.as_ref().context("stack")?;
    let url =
        |addr: Option<std::net::SocketAddr>| addr.map_or(String::new(), |a| format!("http://{a}"));
    let env = bench
        .env
        .clone()
        .with("AUTH_URL", url(stack.auth_addr))
        .with("DOCUMENTS_URL", url(stack.documents_addr))
        .with("INFERENCE_URL", url(stack.inference_addr))
        .with("MAIL_SYNC_URL", url(stack.mail_addr))
        .with("SEARCH_URL", url(stack.search_addr));
    eprintln!("bench-import: importing");
    let started = Instant::now();
    let report = pai::import::run(
        &env,
        &pai::import::Options {
            db: folder.join("pai.db"),
            data: folder.join("data"),
            dry_run: false,
            wait: true,
            pace: std::time::Duration::ZERO,
        },
    )
    .await?;
    let total = started.elapsed().as_secs_f64();
    eprint!("{}", report.render());
    if !report.verified() {
        bail!("the import's counts do not match PostgreSQL");
    }
    let pool = pai_common::db::pool(&pai_common::config::DatabaseSettings::from_env(&env)?)?;
    let pages: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(pages), 0)::bigint FROM documents.documents")
            .fetch_one(&pool)
            .await?;
    let table = |name: &str| report.table(name).cloned().unwrap_or_default();
    let rate = |name: &str| {
        let t = table(name);
        t.imported as f64 / t.seconds.max(1e-9)
    };
    // From the first upload until every document is indexed: the other
    // tables import meanwhile, their mail indexed beside the documents.
    let document_seconds = ["documents", "queries", "email_accounts", "emails"]
        .iter()
        .map(|t| table(t).seconds)
        .sum::<f64>()
        + report.indexing_seconds;
    let import_pages = pages as f64 / document_seconds;

    eprintln!("bench-import: COPY reference");
    let (copy_users, copy_queries, copy_emails) = copy_rates(&bench, &old).await?;
    eprintln!("bench-import: API upload reference ({SAMPLE} PDFs)");
    let mut files: Vec<PathBuf> = old
        .documents()?
        .iter()
        .filter_map(|d| {
            let path = folder.join(d.file_path.as_deref()?);
            path.is_file().then_some(path)
        })
        .take(SAMPLE)
        .collect();
    files.sort();
    let (api_pages, sampled) = api_rate(&bench, &files).await?;
    bench.finish().await?;
    let _ = std::fs::remove_dir_all(&folder);

    println!(
        "\nbench-import: {users} users, {documents} PDFs ({pages} pages), {emails} emails, {queries} queries; whole import {total:.1} s"
    );
    println!(
        "| {:<34} | {:>10} | {:>10} | {:>6} | unit",
        "metric", "import", "reference", "ratio"
    );
    println!("|{:-<36}|{:-<12}|{:-<12}|{:-<8}|-----", "", "", "", "");
    row("users (vs COPY)", rate("users"), copy_users, "rows/s");
    row("queries (vs COPY)", rate("queries"), copy_queries, "rows/s");
    row(
        "emails stored (vs COPY)",
        rate("emails"),
        copy_emails,
        "rows/s",
    );
    row(
        &format!("documents indexed (vs API, {sampled} PDFs)"),
        import_pages,
        api_pages,
        "pages/s",
    );
    Ok(())
}
