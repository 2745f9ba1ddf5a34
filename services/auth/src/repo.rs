//! SQL over schema `auth`. Every query on user data filters by the user id.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_active: bool,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    /// `self` or `admin` while deactivated.
    pub deactivated_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn locked_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|until| *until > now)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_agent: String,
    pub ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A refresh token looked up by hash, with its session and user.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub session_id: Uuid,
    pub used_at: Option<DateTime<Utc>>,
    pub session_revoked: bool,
    pub session_expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub user: UserRow,
}

const USER_COLUMNS: &str = "u.id, u.email, u.username, u.display_name, u.password_hash, \
     u.is_admin, u.is_active, u.failed_logins, u.locked_until, u.deactivated_by, u.created_at";

pub struct NewUser<'a> {
    pub email: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
}

pub async fn insert_user(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<UserRow> {
    let sql = format!(
        "INSERT INTO auth.users AS u (id, email, username, display_name, password_hash, is_admin) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(Uuid::new_v4())
        .bind(user.email)
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.password_hash)
        .bind(user.is_admin)
        .fetch_one(conn)
        .await?)
}

/// A user of an older install, as `pai import-sqlite` brings them in.
pub struct ImportedUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Inserts an imported user unless one with its id is there; returns
/// whether it was inserted. An inactive one is deactivated by an admin
/// (only an admin reactivates it, as in the old app).
pub async fn insert_imported_user(pool: &PgPool, user: &ImportedUser<'_>) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO auth.users (id, email, username, password_hash, is_admin, is_active, \
         deactivated_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN NULL ELSE 'admin' END, $7, $8) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.username)
    .bind(user.password_hash)
    .bind(user.is_admin)
    .bind(user.is_active)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn find_by_login(pool: &PgPool, login: &str) -> Result<Option<UserRow>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM auth.users u \
         WHERE lower(u.email) = lower($1) OR lower(u.username) = lower($1) LIMIT 1"
    );
    Ok(sqlx::query_as(&sql)
        .bind(login)
        .fetch_optional(pool)
        .await?)
}

pub async fn find_by_id(pool: &PgPool, user_id: Uuid) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM auth.users u WHERE u.id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
}

/// Returns the user when the session is live and belongs to them.
pub async fn find_by_session(
    pool: &PgPool,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<UserRow>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL \
         AND s.expires_at > now() AND u.is_active"
    );
    Ok(sqlx::query_as(&sql)
        .bind(session_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?)
}

/// The outcome of counting a password attempt before it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt was counted and may be verified.
    Granted,
    /// The account is locked until then: the password must not be checked.
    Locked(DateTime<Utc>),
    /// The limit's worth of attempts are being verified right now: this one
    /// may be counted once one of them ends (a right password clears the
    /// count, a wrong one may lock the account).
    Full,
}

/// Counts a password attempt as failed before it is verified, in one atomic
/// update that succeeds only while fewer than `limit` are counted: attempts
/// sent at once serialise on the row, so at most `limit` of them are ever
/// verified before the lock, however many arrive. A right password then
/// clears the count ([`clear_failures`]); a wrong one locks the account once
/// the count reached the limit ([`lock_if_limit_reached`]). Only a verified
/// wrong password locks: attempts still being verified do not, so several
/// right logins at once never lock their own account.
pub async fn reserve_attempt(pool: &PgPool, user_id: Uuid, limit: i32) -> Result<Reservation> {
    let counted: Option<i32> = sqlx::query_scalar(
        "UPDATE auth.users SET failed_logins = failed_logins + 1 \
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= now()) \
           AND failed_logins < $2 \
         RETURNING failed_logins",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_optional(pool)
    .await?;
    if counted.is_some() {
        return Ok(Reservation::Granted);
    }
    let locked: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT locked_until FROM auth.users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .flatten();
    Ok(match locked {
        Some(until) if until > Utc::now() => Reservation::Locked(until),
        // Not locked (or the user is gone, which the caller's next read
        // finds): the count is full of attempts in progress.
        Some(_) | None => Reservation::Full,
    })
}

/// After a wrong password: locks the account for `lock_for` when the count
/// has reached `limit` (and restarts the count). Returns the lock's end when
/// the account is locked now, by this call or another.
pub async fn lock_if_limit_reached(
    pool: &PgPool,
    user_id: Uuid,
    limit: i32,
    lock_for: chrono::Duration,
) -> Result<Option<DateTime<Utc>>> {
    let locked: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE auth.users SET \
           locked_until = CASE WHEN failed_logins >= $2 AND (locked_until IS NULL OR locked_until <= now()) \
                          THEN now() + $3 ELSE locked_until END, \
           failed_logins = CASE WHEN failed_logins >= $2 THEN 0 ELSE failed_logins END \
         WHERE id = $1 RETURNING locked_until",
    )
    .bind(user_id)
    .bind(limit)
    .bind(lock_for)
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(locked.filter(|until| *until > Utc::now()))
}

pub async fn clear_failures(pool: &PgPool, user_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE auth.users SET failed_logins = 0, locked_until = NULL \
         WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// What a password attempt was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    Login,
    /// The current password, asked again behind a session (change-password,
    /// deactivate, delete-account).
    Confirm,
}

impl AttemptKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Confirm => "confirm",
        }
    }
}

/// One row of `auth.login_attempts`.
pub struct Attempt<'a> {
    pub user_id: Option<Uuid>,
    pub ip: &'a str,
    pub kind: AttemptKind,
    /// Whether the password was checked against the user's hash.
    pub password_checked: bool,
    pub success: bool,
}

pub async fn record_attempt(
    executor: impl sqlx::PgExecutor<'_>,
    attempt: Attempt<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth.login_attempts (user_id, ip, success, kind, password_checked) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(attempt.user_id)
    .bind(attempt.ip)
    .bind(attempt.success)
    .bind(attempt.kind.as_str())
    .bind(attempt.password_checked)
    .execute(executor)
    .await?;
    Ok(())
}

/// Opens a session with its first refresh token and records the sign-in
/// (`password_checked` for a login, not a registration), in one statement
/// (one round trip, atomic).
pub async fn open_session(
    pool: &PgPool,
    user_id: Uuid,
    client: (&str, &str),
    expires_at: DateTime<Utc>,
    token_hash: &[u8],
    password_checked: bool,
) -> Result<Uuid> {
    let (user_agent, ip) = client;
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH session AS ( \
           INSERT INTO auth.sessions (id, user_id, user_agent, ip, expires_at) \
           VALUES ($1, $2, $3, $4, $5) RETURNING id), \
         attempt AS ( \
           INSERT INTO auth.login_attempts (user_id, ip, success, password_checked) \
           VALUES ($2, $4, true, $7)) \
         INSERT INTO auth.refresh_tokens (token_hash, session_id, user_id) \
         SELECT $6, id, $2 FROM session",
    )
    .bind(id)
    .bind(user_id)
    .bind(user_agent)
    .bind(ip)
    .bind(expires_at)
    .bind(token_hash)
    .bind(password_checked)
    .execute(pool)
    .await?;
    Ok(id)
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    session_id: Uuid,
    user_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth.refresh_tokens (token_hash, session_id, user_id) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_refresh(pool: &PgPool, token_hash: &[u8]) -> Result<Option<RefreshRow>> {
    let sql = format!(
        "SELECT rt.session_id, rt.used_at, s.revoked_at IS NOT NULL AS session_revoked, \
         s.expires_at AS session_expires_at, {USER_COLUMNS} \
         FROM auth.refresh_tokens rt \
         JOIN auth.sessions s ON s.id = rt.session_id \
         JOIN auth.users u ON u.id = rt.user_id \
         WHERE rt.token_hash = $1"
    );
    Ok(sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?)
}

/// Marks a refresh token used; false when it already was (a concurrent reuse).
pub async fn use_refresh(conn: &mut PgConnection, token_hash: &[u8]) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(token_hash)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch_session(conn: &mut PgConnection, session_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE auth.sessions SET last_used_at = now() WHERE id = $1")
        .bind(session_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list_sessions(pool: &PgPool, user_id: Uuid) -> Result<Vec<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT id, user_agent, ip, created_at, last_used_at, expires_at FROM auth.sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
         ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Which of a user's sessions to revoke.
pub enum Revoke {
    One(Uuid),
    AllBut(Option<Uuid>),
}

/// Revokes sessions of `user_id` and feeds them to verifiers; returns how
/// many were live. `token_lifetime` bounds how long a revoked session's
/// access tokens could otherwise stay valid.
pub async fn revoke_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    which: Revoke,
    reason: &str,
    token_lifetime: chrono::Duration,
) -> Result<u64> {
    let (one, keep) = match which {
        Revoke::One(id) => (Some(id), None),
        Revoke::AllBut(keep) => (None, keep),
    };
    let revoked: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE auth.sessions SET revoked_at = now(), revoked_reason = $4 \
         WHERE user_id = $1 AND revoked_at IS NULL \
           AND ($2::uuid IS NULL OR id = $2) AND ($3::uuid IS NULL OR id <> $3) \
         RETURNING id",
    )
    .bind(user_id)
    .bind(one)
    .bind(keep)
    .bind(reason)
    .fetch_all(&mut *conn)
    .await?;
    if !revoked.is_empty() {
        sqlx::query(
            "INSERT INTO auth.revocations (session_id, expires_at) \
             SELECT unnest($1::uuid[]), now() + $2",
        )
        .bind(&revoked)
        .bind(token_lifetime)
        .execute(conn)
        .await?;
    }
    Ok(revoked.len() as u64)
}

/// One row of the revocation feed.
#[derive(Debug)]
pub struct RevocationRow {
    pub seq: i64,
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// The id of the transaction that wrote it.
    pub xid: i64,
}

/// The most rows one read of the feed returns.
pub const FEED_PAGE: usize = 10_000;

/// The unexpired revocations written by transactions numbered `cursor` or
/// later, and the cursor to pass next time.
///
/// Sequence numbers are taken when a row is inserted, not when its
/// transaction commits, so a feed that moved past the highest `seq` it saw
/// would skip a lower one committed late. The cursor is instead the oldest
/// transaction still running when the feed was read (its snapshot's `xmin`):
/// every transaction below it had finished, so its rows were read, and every
/// row of a later one is read again next time (verifiers add a session
/// twice harmlessly).
pub async fn revocation_feed(pool: &PgPool, cursor: i64) -> Result<(Vec<RevocationRow>, i64)> {
    // One statement, one snapshot: every transaction below the snapshot's
    // xmin had finished when it was taken, so the rows it wrote are read.
    type Row = (
        i64,
        Option<i64>,
        Option<Uuid>,
        Option<DateTime<Utc>>,
        Option<i64>,
    );
    let read: Vec<Row> = sqlx::query_as(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
                r.seq, r.session_id, r.expires_at, r.xid \
         FROM (SELECT) AS snapshot LEFT JOIN LATERAL ( \
           SELECT seq, session_id, expires_at, xid::text::bigint AS xid FROM auth.revocations \
           WHERE xid >= $1::text::xid8 AND expires_at > now() ORDER BY xid, seq LIMIT $2 \
         ) r ON true",
    )
    .bind(cursor.to_string())
    .bind(FEED_PAGE as i64)
    .fetch_all(pool)
    .await?;
    let xmin = read.first().map_or(cursor, |row| row.0);
    let rows: Vec<RevocationRow> = read
        .into_iter()
        .filter_map(|(_, seq, session_id, expires_at, xid)| {
            Some(RevocationRow {
                seq: seq?,
                session_id: session_id?,
                expires_at: expires_at?,
                xid: xid?,
            })
        })
        .collect();
    let next = match (rows.first(), rows.last()) {
        // A full page: go on from the last transaction read (its rows again),
        // or past it when one transaction filled the page.
        (Some(first), Some(last)) if rows.len() == FEED_PAGE => {
            if first.xid == last.xid {
                tracing::warn!(
                    xid = last.xid,
                    "one transaction revoked more sessions than a feed page"
                );
                last.xid + 1
            } else {
                last.xid
            }
        }
        _ => xmin.max(cursor),
    };
    Ok((rows, next))
}

pub async fn prune_revocations(pool: &PgPool) -> Result<u64> {
    let done = sqlx::query("DELETE FROM auth.revocations WHERE expires_at < now()")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Replaces a user's hash of their password by a stronger hash of the same
/// password (an imported bcrypt hash by argon2id), if it is still `old`;
/// their sessions stay.
pub async fn upgrade_password_hash(
    pool: &PgPool,
    user_id: Uuid,
    old: &str,
    new: &str,
) -> Result<()> {
    sqlx::query("UPDATE auth.users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
        .bind(user_id)
        .bind(old)
        .bind(new)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_password(conn: &mut PgConnection, user_id: Uuid, hash: &str) -> Result<()> {
    sqlx::query("UPDATE auth.users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Who changes an account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The account's own user.
    User,
    Admin,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "self",
            Self::Admin => "admin",
        }
    }
}

/// Activates or deactivates an account, recording who deactivated it. A
/// user cannot reactivate an account an admin deactivated: then, as for an
/// unknown user, nothing is updated and `None` is returned.
pub async fn set_active(
    conn: &mut PgConnection,
    user_id: Uuid,
    active: bool,
    by: Actor,
) -> Result<Option<UserRow>> {
    let sql = format!(
        "UPDATE auth.users AS u SET is_active = $2, \
           deactivated_by = CASE WHEN $2 THEN NULL ELSE $3 END, updated_at = now() \
         WHERE u.id = $1 AND (NOT $2 OR $3 = 'admin' OR u.deactivated_by IS DISTINCT FROM 'admin') \
         RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user_id)
        .bind(active)
        .bind(by.as_str())
        .fetch_optional(conn)
        .await?)
}

pub async fn update_profile(
    pool: &PgPool,
    user_id: Uuid,
    email: Option<&str>,
    username: Option<&str>,
    display_name: Option<&str>,
) -> Result<Option<UserRow>> {
    let sql = format!(
        "UPDATE auth.users AS u SET email = coalesce($2, u.email), \
           username = coalesce($3, u.username), display_name = coalesce($4, u.display_name), \
           updated_at = now() WHERE u.id = $1 RETURNING {USER_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(user_id)
        .bind(email)
        .bind(username)
        .bind(display_name)
        .fetch_optional(pool)
        .await?)
}

/// Deletes the user and, by cascade, every row that refers to them.
pub async fn delete_user(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM auth.users WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_outbox(
    conn: &mut PgConnection,
    routing_key: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO auth.outbox (routing_key, payload) VALUES ($1, $2)")
        .bind(routing_key)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// One page of users ordered by (created_at, id), after the cursor's key.
pub async fn list_users(
    pool: &PgPool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<UserRow>> {
    let (after_time, after_id) = after.unzip();
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM auth.users u \
         WHERE $1::timestamptz IS NULL OR (u.created_at, u.id) > ($1, $2) \
         ORDER BY u.created_at, u.id LIMIT $3"
    );
    Ok(sqlx::query_as(&sql)
        .bind(after_time)
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}
