//! `pai backup` and `pai restore`: every pai schema (one consistent
//! `pg_dump` snapshot) and the uploaded files; the search indexes are not
//! saved, they rebuild from `search.chunks` when search starts.
//!
//! A backup folder holds `database.dump` (`pg_dump --format=custom` of the
//! schemas, without owners or grants, so it restores as any role),
//! `uploads/` (a copy of `UPLOAD_PATH`) and `manifest.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use pai_common::Env;
use pai_common::config::DatabaseSettings;
use serde_json::json;

/// The schemas pai's services own.
pub const SCHEMAS: [&str; 6] = [
    crate::import::SCHEMA,
    pai_auth::SCHEMA,
    pai_documents::SCHEMA,
    pai_search::SCHEMA,
    pai_inference::SCHEMA,
    pai_mail_sync::SCHEMA,
];

const DUMP: &str = "database.dump";
const UPLOADS: &str = "uploads";
const MANIFEST: &str = "manifest.json";

/// What a backup or a restore moved.
#[derive(Debug)]
pub struct Report {
    pub dump_bytes: u64,
    pub files: u64,
    pub file_bytes: u64,
}

/// A PostgreSQL client program: `PG_BIN_DIR/name` if set, else `name` on
/// the `PATH`, else the newest under `/usr/lib/postgresql`.
fn program(env: &Env, name: &str) -> PathBuf {
    if let Some(dir) = env.get("PG_BIN_DIR") {
        return Path::new(dir).join(name);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    if on_path {
        return PathBuf::from(name);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from(name), |(_, path)| path)
}

fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let out = command.output().with_context(|| {
        format!(
            "starting {what} ({:?}); install PostgreSQL's client programs or set PG_BIN_DIR",
            command.get_program()
        )
    })?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Copies the files under `from` into `to` (created); returns how many and
/// their bytes.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let (mut files, mut bytes) = (0, 0);
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok((0, 0));
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            let (f, b) = copy_tree(&entry.path(), &target)?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            bytes += std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            files += 1;
        }
    }
    Ok((files, bytes))
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut entries| entries.next().is_none())
}

/// Writes a backup of the database at `DATABASE_URL` and of `UPLOAD_PATH`
/// into the new or empty folder `out`. The dump is one snapshot; files
/// uploaded while it runs may be in `uploads/` without their row, never
/// the other way round when the files are copied after the dump.
pub async fn backup(env: &Env, out: &Path) -> anyhow::Result<Report> {
    if !is_empty_dir(out) {
        bail!("{} is not empty: back up into a new folder", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let database = DatabaseSettings::from_env(env)?;
    let dump = out.join(DUMP);
    let mut pg_dump = Command::new(program(env, "pg_dump"));
    pg_dump
        .args(["--format=custom", "--no-owner", "--no-privileges"])
        .arg(format!("--file={}", dump.display()))
        .arg(format!("--dbname={}", database.url));
    for schema in SCHEMAS {
        pg_dump.arg(format!("--schema={schema}"));
    }
    run(pg_dump, "pg_dump")?;
    let uploads = PathBuf::from(env.string("UPLOAD_PATH", "data/uploads"));
    let (files, file_bytes) = copy_tree(&uploads, &out.join(UPLOADS))?;
    let report = Report {
        dump_bytes: std::fs::metadata(&dump)?.len(),
        files,
        file_bytes,
    };
    let manifest = json!({
        "pai": env!("CARGO_PKG_VERSION"),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "schemas": SCHEMAS,
        "dump_bytes": report.dump_bytes,
        "files": report.files,
        "file_bytes": report.file_bytes,
    });
    std::fs::write(out.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(report)
}

/// Restores the backup in `from` into the database at `DATABASE_URL`
/// (created if missing; it must hold none of pai's schemas) and into an
/// empty `UPLOAD_PATH`, then removes `VECTOR_DB_PATH` so that search
/// rebuilds its indexes from the restored rows on start. Migrations of a
/// newer pai apply on the next `pai migrate` or `pai run`.
pub async fn restore(env: &Env, from: &Path) -> anyhow::Result<Report> {
    let dump = from.join(DUMP);
    if !dump.is_file() {
        bail!("{} holds no {DUMP}: not a pai backup", from.display());
    }
    let uploads = PathBuf::from(env.string("UPLOAD_PATH", "data/uploads"));
    if !is_empty_dir(&uploads) {
        bail!(
            "UPLOAD_PATH {} is not empty: restore into an empty folder",
            uploads.display()
        );
    }
    let database = DatabaseSettings::from_env(env)?;
    pai_common::db::ensure_database(&database.url).await?;
    let pool = pai_common::db::pool(&database)?;
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name = ANY($1)",
    )
    .bind(SCHEMAS.to_vec())
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    if !present.is_empty() {
        bail!(
            "the database already holds pai's schemas ({}): restore into an empty database",
            present.join(", ")
        );
    }
    let mut pg_restore = Command::new(program(env, "pg_restore"));
    pg_restore
        .args([
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
        ])
        .arg(format!("--dbname={}", database.url))
        .arg(&dump);
    run(pg_restore, "pg_restore")?;
    let (files, file_bytes) = copy_tree(&from.join(UPLOADS), &uploads)?;
    let indexes = PathBuf::from(env.string("VECTOR_DB_PATH", "data/vector_db"));
    if indexes.exists() {
        std::fs::remove_dir_all(&indexes)
            .with_context(|| format!("removing the old search indexes {}", indexes.display()))?;
    }
    Ok(Report {
        dump_bytes: std::fs::metadata(&dump)?.len(),
        files,
        file_bytes,
    })
}
