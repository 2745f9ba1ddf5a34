//! The older single-user install's SQLite database (the migration plan's
//! schema), read the way real installs need: any column may be NULL, text
//! may be stored as a BLOB or as bytes that are not UTF-8 (read as
//! Latin-1), and timestamps come in several formats.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};

/// The plan's schema, as `pai export-sqlite` writes it.
pub const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, username TEXT, password_hash TEXT,
    is_admin INTEGER, is_active INTEGER, created_at TEXT, updated_at TEXT);
CREATE TABLE documents (id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT, file_path TEXT,
    content TEXT, metadata TEXT, namespace TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE queries (id INTEGER PRIMARY KEY, user_id INTEGER, query_text TEXT, response TEXT,
    sources TEXT, created_at TEXT);
CREATE TABLE email_accounts (id INTEGER PRIMARY KEY, user_id INTEGER, email_address TEXT,
    access_token TEXT, refresh_token TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE emails (id INTEGER PRIMARY KEY, user_id INTEGER, email_account_id INTEGER,
    thread_id TEXT, subject TEXT, content TEXT, classification TEXT, created_at TEXT);
CREATE TABLE email_attachments (id INTEGER PRIMARY KEY, email_id INTEGER, filename TEXT,
    file_path TEXT, content_type TEXT, size INTEGER);
CREATE TABLE oauth_sessions (id INTEGER PRIMARY KEY, user_id INTEGER, state TEXT,
    created_at TEXT, expires_at TEXT);
";

#[derive(Debug, thiserror::Error)]
pub enum OldInstallError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("reading table {table}: {source}")]
    Read {
        table: &'static str,
        source: rusqlite::Error,
    },
}

#[derive(Debug, Clone)]
pub struct OldUser {
    pub id: i64,
    pub email: Option<String>,
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub is_active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct OldDocument {
    pub id: i64,
    pub user_id: Option<i64>,
    pub title: Option<String>,
    pub file_path: Option<String>,
    pub metadata: Option<String>,
    pub namespace: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct OldQuery {
    pub id: i64,
    pub user_id: Option<i64>,
    pub query_text: Option<String>,
    pub response: Option<String>,
    pub sources: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct OldAccount {
    pub id: i64,
    pub user_id: Option<i64>,
    pub email_address: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct OldEmail {
    pub id: i64,
    pub user_id: Option<i64>,
    pub account_id: Option<i64>,
    pub thread_id: Option<String>,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub classification: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct OldAttachment {
    pub id: i64,
    pub email_id: Option<i64>,
    pub filename: Option<String>,
    pub file_path: Option<String>,
    pub content_type: Option<String>,
}

/// An open old install, read only.
pub struct OldInstall {
    conn: Connection,
}

/// A text column: UTF-8 as it is, other bytes as Latin-1 (what the old
/// app's readers did with them), numbers as their decimal text.
pub fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(decode(bytes)),
    })
}

/// UTF-8 where the bytes are, else Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

fn integer(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(x) => Some(x as i64),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => decode(bytes).trim().parse().ok(),
        ValueRef::Null => None,
    })
}

fn flag(row: &Row<'_>, index: usize, default: bool) -> rusqlite::Result<bool> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => default,
        ValueRef::Integer(n) => n != 0,
        ValueRef::Real(x) => x != 0.0,
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            matches!(
                decode(bytes).trim().to_lowercase().as_str(),
                "1" | "true" | "t" | "yes"
            )
        }
    })
}

fn moment(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(n) => epoch(n),
        ValueRef::Real(x) => epoch(x as i64),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => parse_time(&decode(bytes)),
        ValueRef::Null => None,
    })
}

fn epoch(seconds: i64) -> Option<DateTime<Utc>> {
    // Milliseconds where seconds would be past the year 5000.
    let seconds = if seconds > 100_000_000_000 {
        seconds / 1000
    } else {
        seconds
    };
    Utc.timestamp_opt(seconds, 0).single()
}

/// The timestamp formats the old app's versions wrote: RFC 3339 with any
/// offset, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), `MM/DD/YYYY HH:MM[:SS]`, a
/// plain date, and Unix seconds (or milliseconds).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(n) = value.parse::<i64>() {
        return epoch(n);
    }
    const NAIVE: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
    ];
    for format in NAIVE {
        if let Ok(at) = NaiveDateTime::parse_from_str(value, format) {
            return Some(at.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|at| at.and_utc())
}

impl OldInstall {
    /// Opens `path` read only: the import never writes the old install.
    pub fn open(path: &std::path::Path) -> Result<Self, OldInstallError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            // Fails here, not later, when the file is not a database.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(conn)
        })
        .map_err(|source| OldInstallError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { conn })
    }

    fn read<T>(
        &self,
        table: &'static str,
        sql: &str,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, OldInstallError> {
        let error = |source| OldInstallError::Read { table, source };
        let mut statement = self.conn.prepare(sql).map_err(error)?;
        let rows = statement.query_map([], |row| map(row)).map_err(error)?;
        rows.collect::<Result<Vec<T>, _>>().map_err(error)
    }

    pub fn users(&self) -> Result<Vec<OldUser>, OldInstallError> {
        self.read(
            "users",
            "SELECT id, email, username, password_hash, is_admin, is_active, created_at, \
             updated_at FROM users ORDER BY id",
            |row| {
                Ok(OldUser {
                    id: row.get(0)?,
                    email: text(row, 1)?,
                    username: text(row, 2)?,
                    password_hash: text(row, 3)?,
                    is_admin: flag(row, 4, false)?,
                    is_active: flag(row, 5, true)?,
                    created_at: moment(row, 6)?,
                    updated_at: moment(row, 7)?,
                })
            },
        )
    }

    pub fn documents(&self) -> Result<Vec<OldDocument>, OldInstallError> {
        self.read(
            "documents",
            "SELECT id, user_id, title, file_path, metadata, namespace, created_at, updated_at \
             FROM documents ORDER BY id",
            |row| {
                Ok(OldDocument {
                    id: row.get(0)?,
                    user_id: integer(row, 1)?,
                    title: text(row, 2)?,
                    file_path: text(row, 3)?,
                    metadata: text(row, 4)?,
                    namespace: text(row, 5)?,
                    created_at: moment(row, 6)?,
                    updated_at: moment(row, 7)?,
                })
            },
        )
    }

    pub fn queries(&self) -> Result<Vec<OldQuery>, OldInstallError> {
        self.read(
            "queries",
            "SELECT id, user_id, query_text, response, sources, created_at FROM queries ORDER BY id",
            |row| {
                Ok(OldQuery {
                    id: row.get(0)?,
                    user_id: integer(row, 1)?,
                    query_text: text(row, 2)?,
                    response: text(row, 3)?,
                    sources: text(row, 4)?,
                    created_at: moment(row, 5)?,
                })
            },
        )
    }

    pub fn accounts(&self) -> Result<Vec<OldAccount>, OldInstallError> {
        self.read(
            "email_accounts",
            "SELECT id, user_id, email_address, access_token, refresh_token, created_at \
             FROM email_accounts ORDER BY id",
            |row| {
                Ok(OldAccount {
                    id: row.get(0)?,
                    user_id: integer(row, 1)?,
                    email_address: text(row, 2)?,
                    access_token: text(row, 3)?,
                    refresh_token: text(row, 4)?,
                    created_at: moment(row, 5)?,
                })
            },
        )
    }

    pub fn emails(&self) -> Result<Vec<OldEmail>, OldInstallError> {
        self.read(
            "emails",
            "SELECT id, user_id, email_account_id, thread_id, subject, content, classification, \
             created_at FROM emails ORDER BY id",
            |row| {
                Ok(OldEmail {
                    id: row.get(0)?,
                    user_id: integer(row, 1)?,
                    account_id: integer(row, 2)?,
                    thread_id: text(row, 3)?,
                    subject: text(row, 4)?,
                    content: text(row, 5)?,
                    classification: text(row, 6)?,
                    created_at: moment(row, 7)?,
                })
            },
        )
    }

    pub fn attachments(&self) -> Result<Vec<OldAttachment>, OldInstallError> {
        self.read(
            "email_attachments",
            "SELECT id, email_id, filename, file_path, content_type FROM email_attachments \
             ORDER BY id",
            |row| {
                Ok(OldAttachment {
                    id: row.get(0)?,
                    email_id: integer(row, 1)?,
                    filename: text(row, 2)?,
                    file_path: text(row, 3)?,
                    content_type: text(row, 4)?,
                })
            },
        )
    }

    /// Rows of `oauth_sessions`: connects begun in the old app, which
    /// nothing can finish any more.
    pub fn oauth_sessions(&self) -> Result<Vec<i64>, OldInstallError> {
        self.read(
            "oauth_sessions",
            "SELECT id FROM oauth_sessions ORDER BY id",
            |row| row.get(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_apps_timestamp_formats_parse() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_time("2023-03-04 05:15:00"),
            Some(utc("2023-03-04T05:15:00Z"))
        );
        assert_eq!(
            parse_time("2023-03-04T05:15:00.123456+02:00"),
            Some(utc("2023-03-04T03:15:00.123456Z"))
        );
        assert_eq!(
            parse_time("03/04/2023 05:15"),
            Some(utc("2023-03-04T05:15:00Z"))
        );
        assert_eq!(parse_time("1672531200"), Some(utc("2023-01-01T00:00:00Z")));
        assert_eq!(
            parse_time("1672531200000"),
            Some(utc("2023-01-01T00:00:00Z"))
        );
        assert_eq!(parse_time("2023-03-04"), Some(utc("2023-03-04T00:00:00Z")));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_latin1() {
        assert_eq!(decode(b"caf\xe9"), "café");
        assert_eq!(decode("café".as_bytes()), "café");
    }
}
