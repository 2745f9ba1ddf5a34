//! The auth service's logic, independent of gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pai_common::UserContext;
use pai_common::identity::JwtKeys;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{AuthError, Result};
use crate::password::{self, Hasher, PasswordPolicy};
use crate::repo::{
    self, Actor, Attempt, AttemptKind, ImportedUser, NewUser, Reservation, Revoke, UserRow,
};
use crate::session_cache::SessionCache;
use crate::tokens;

/// How often an attempt that found the count full of attempts in progress
/// asks again, and for how long before it is answered [`AuthError::Busy`].
const RESERVATION_POLL: Duration = Duration::from_millis(20);
const MAX_RESERVATION_WAIT: Duration = Duration::from_secs(10);

/// Lockout settings (ASVS 6.3.1).
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub attempts: u32,
    pub duration: Duration,
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: String,
    pub user_agent: String,
}

/// A fresh token pair and the user it belongs to.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: UserRow,
}

pub struct AuthService {
    pub(crate) pool: PgPool,
    pub(crate) keys: Arc<JwtKeys>,
    pub(crate) hasher: Hasher,
    pub(crate) policy: PasswordPolicy,
    pub(crate) lockout: Lockout,
    pub(crate) refresh_lifetime: Duration,
    pub(crate) sessions: SessionCache,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn is_unique_violation(err: &AuthError) -> bool {
    matches!(err, AuthError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}

fn validate_email(email: &str) -> Result<()> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "email: not a valid email address".into(),
        ))
    }
}

fn validate_username(username: &str) -> Result<()> {
    let valid = (3..=32).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "username: 3 to 32 letters, digits, '_', '-' or '.'".into(),
        ))
    }
}

impl AuthService {
    fn token_lifetime(&self) -> chrono::Duration {
        chrono_duration(self.keys.access_lifetime())
    }

    /// Opens a session for `user` and returns its first token pair; the
    /// successful sign-in is recorded in the same statement (whether its
    /// password was checked: a login, not a registration).
    async fn open_session(
        &self,
        user: UserRow,
        client: &Client,
        password_checked: bool,
    ) -> Result<Tokens> {
        let expires_at = Utc::now() + chrono_duration(self.refresh_lifetime);
        let (refresh_token, hash) = tokens::new_refresh_token();
        let session_id = repo::open_session(
            &self.pool,
            user.id,
            (&client.user_agent, &client.ip),
            expires_at,
            &hash,
            password_checked,
        )
        .await?;
        Ok(self.tokens(user, session_id, refresh_token))
    }

    fn tokens(&self, user: UserRow, session_id: Uuid, refresh_token: String) -> Tokens {
        let access_token = self.keys.issue_access(&UserContext {
            user_id: user.id,
            session_id,
            is_admin: user.is_admin,
        });
        Tokens {
            access_token,
            refresh_token,
            expires_in: self.keys.access_lifetime().as_secs(),
            user,
        }
    }

    /// Creates an account (an admin one with `is_admin`).
    pub async fn create_user(
        &self,
        email: &str,
        username: &str,
        display_name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<UserRow> {
        let email = email.trim();
        let username = username.trim();
        validate_email(email)?;
        validate_username(username)?;
        self.policy.check(password, email, username)?;
        let password_hash = self.hasher.hash(password).await?;
        let mut conn = self.pool.acquire().await?;
        repo::insert_user(
            &mut conn,
            &NewUser {
                email,
                username,
                display_name: display_name.trim(),
                password_hash: &password_hash,
                is_admin,
            },
        )
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                AuthError::Conflict("an account with this email or username already exists".into())
            } else {
                err
            }
        })
    }

    /// Brings in a user of an older install with their password hash as it
    /// is (bcrypt ones are replaced by argon2id at the next sign-in).
    /// Returns whether the user was created (false: already imported).
    pub async fn import_user(&self, user: &ImportedUser<'_>) -> Result<bool> {
        validate_email(user.email)?;
        if user.username.trim().is_empty() || user.username.chars().count() > 64 {
            return Err(AuthError::Invalid(
                "username must be 1 to 64 characters".into(),
            ));
        }
        if !password::is_bcrypt(user.password_hash) && !user.password_hash.starts_with("$argon2id$")
        {
            return Err(AuthError::Invalid(
                "password_hash must be a bcrypt or argon2id hash".into(),
            ));
        }
        repo::insert_imported_user(&self.pool, user)
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    AuthError::Conflict(
                        "another account has this email or username (compared without regard to case)"
                            .into(),
                    )
                } else {
                    err
                }
            })
    }

    pub async fn register(
        &self,
        email: &str,
        username: &str,
        display_name: &str,
        password: &str,
        client: &Client,
    ) -> Result<Tokens> {
        let user = self
            .create_user(email, username, display_name, password, false)
            .await?;
        self.open_session(user, client, false).await
    }

    /// Checks `password` against `user`'s hash under the lockout: the
    /// attempt is counted before the hash is computed, so parallel guesses
    /// cannot all be verified, and a locked account's password is never
    /// checked. A right password clears the count. `wrong` is the error for
    /// a wrong password.
    async fn verify_counted(
        &self,
        user: &UserRow,
        password: &str,
        ip: &str,
        kind: AttemptKind,
        wrong: AuthError,
    ) -> Result<()> {
        let limit = i32::try_from(self.lockout.attempts).unwrap_or(i32::MAX);
        let attempt = |password_checked, success| Attempt {
            user_id: Some(user.id),
            ip,
            kind,
            password_checked,
            success,
        };
        // While the limit's worth of attempts are being verified, wait for
        // one of them to end rather than refuse a right password.
        let waiting_since = Instant::now();
        loop {
            match repo::reserve_attempt(&self.pool, user.id, limit).await? {
                Reservation::Granted => break,
                Reservation::Locked(until) => {
                    repo::record_attempt(&self.pool, attempt(false, false)).await?;
                    return Err(AuthError::Locked { until });
                }
                Reservation::Full if waiting_since.elapsed() < MAX_RESERVATION_WAIT => {
                    tokio::time::sleep(RESERVATION_POLL).await;
                }
                Reservation::Full => return Err(AuthError::Busy),
            }
        }
        if self.hasher.verify(password, &user.password_hash).await? {
            repo::clear_failures(&self.pool, user.id).await?;
            if password::is_bcrypt(&user.password_hash) {
                let upgraded = self.hasher.hash(password).await?;
                repo::upgrade_password_hash(&self.pool, user.id, &user.password_hash, &upgraded)
                    .await?;
            }
            // A login's success is recorded with its session.
            if kind == AttemptKind::Confirm {
                repo::record_attempt(&self.pool, attempt(true, true)).await?;
            }
            return Ok(());
        }
        repo::record_attempt(&self.pool, attempt(true, false)).await?;
        let lock_for = chrono_duration(self.lockout.duration);
        Err(
            match repo::lock_if_limit_reached(&self.pool, user.id, limit, lock_for).await? {
                Some(until) => AuthError::Locked { until },
                None => wrong,
            },
        )
    }

    /// Checks a password for a login, applying lockout. Unknown logins and
    /// wrong passwords get the same error after the same work.
    async fn check_credentials(
        &self,
        login: &str,
        password: &str,
        client: &Client,
    ) -> Result<UserRow> {
        let Some(user) = repo::find_by_login(&self.pool, login.trim()).await? else {
            self.hasher.verify_dummy(password).await?;
            let attempt = Attempt {
                user_id: None,
                ip: &client.ip,
                kind: AttemptKind::Login,
                password_checked: false,
                success: false,
            };
            repo::record_attempt(&self.pool, attempt).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.verify_counted(
            &user,
            password,
            &client.ip,
            AttemptKind::Login,
            AuthError::InvalidCredentials,
        )
        .await?;
        Ok(user)
    }

    pub async fn login(&self, login: &str, password: &str, client: &Client) -> Result<Tokens> {
        let user = self.check_credentials(login, password, client).await?;
        if !user.is_active {
            // Say who can undo it: the user (reactivate), or an admin only.
            return Err(match user.deactivated_by.as_deref() {
                Some("admin") => AuthError::DeactivatedByAdmin,
                _ => AuthError::Deactivated,
            });
        }
        self.open_session(user, client, true).await
    }

    /// Reactivates an account its user deactivated, with its credentials;
    /// an account an admin deactivated stays so until an admin reactivates it.
    pub async fn reactivate(&self, email: &str, password: &str, client: &Client) -> Result<Tokens> {
        let user = self.check_credentials(email, password, client).await?;
        let user = if user.is_active {
            user
        } else {
            let mut conn = self.pool.acquire().await?;
            let reactivated = repo::set_active(&mut conn, user.id, true, Actor::User).await;
            self.sessions.forget_user(user.id);
            reactivated?.ok_or(AuthError::DeactivatedByAdmin)?
        };
        self.open_session(user, client, true).await
    }

    /// Rotates a refresh token. Presenting one that was already used revokes
    /// its whole session (ASVS 10.4.5 / 7.2.4).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        let hash = tokens::hash_refresh_token(refresh_token.trim());
        let Some(found) = repo::find_refresh(&self.pool, &hash).await? else {
            return Err(AuthError::RefreshInvalid);
        };
        if found.session_revoked || found.session_expires_at <= Utc::now() || !found.user.is_active
        {
            return Err(AuthError::RefreshInvalid);
        }
        if found.used_at.is_some() {
            self.revoke_for_reuse(found.user.id, found.session_id)
                .await?;
            return Err(AuthError::RefreshInvalid);
        }
        let (next, next_hash) = tokens::new_refresh_token();
        let mut tx = self.pool.begin().await?;
        if !repo::use_refresh(&mut tx, &hash).await? {
            drop(tx);
            self.revoke_for_reuse(found.user.id, found.session_id)
                .await?;
            return Err(AuthError::RefreshInvalid);
        }
        repo::insert_refresh_token(&mut tx, &next_hash, found.session_id, found.user.id).await?;
        repo::touch_session(&mut tx, found.session_id).await?;
        tx.commit().await?;
        Ok(self.tokens(found.user, found.session_id, next))
    }

    async fn revoke_for_reuse(&self, user_id: Uuid, session_id: Uuid) -> Result<()> {
        tracing::warn!(%user_id, %session_id, "refresh token reused; revoking the session");
        let mut conn = self.pool.acquire().await?;
        repo::revoke_sessions(
            &mut conn,
            user_id,
            Revoke::One(session_id),
            "refresh token reuse",
            self.token_lifetime(),
        )
        .await?;
        self.sessions.forget_user(user_id);
        Ok(())
    }

    /// Returns the caller's user when their session is still live.
    pub async fn authorize(&self, ctx: &UserContext) -> Result<UserRow> {
        repo::find_by_session(&self.pool, ctx.user_id, ctx.session_id)
            .await?
            .ok_or(AuthError::SessionInvalid)
    }

    /// [`Self::authorize`] for read-only handlers: a session found valid
    /// within the session cache's time-to-live is not queried again.
    pub async fn authorize_cached(&self, ctx: &UserContext) -> Result<Arc<UserRow>> {
        if let Some(user) = self.sessions.get(ctx.session_id, ctx.user_id) {
            return Ok(user);
        }
        let checked_at = Instant::now();
        let user = Arc::new(self.authorize(ctx).await?);
        self.sessions
            .put(ctx.session_id, Arc::clone(&user), checked_at);
        Ok(user)
    }

    pub async fn revoke(&self, ctx: &UserContext, which: Revoke, reason: &str) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        let revoked =
            repo::revoke_sessions(&mut conn, ctx.user_id, which, reason, self.token_lifetime())
                .await;
        self.sessions.forget_user(ctx.user_id);
        revoked
    }

    pub async fn list_sessions(&self, ctx: &UserContext) -> Result<Vec<repo::SessionRow>> {
        repo::list_sessions(&self.pool, ctx.user_id).await
    }

    pub async fn update_profile(
        &self,
        ctx: &UserContext,
        email: Option<&str>,
        username: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<UserRow> {
        let email = email.map(str::trim);
        let username = username.map(str::trim);
        if let Some(email) = email {
            validate_email(email)?;
        }
        if let Some(username) = username {
            validate_username(username)?;
        }
        let updated = repo::update_profile(
            &self.pool,
            ctx.user_id,
            email,
            username,
            display_name.map(str::trim),
        )
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                AuthError::Conflict("this email or username is taken".into())
            } else {
                err
            }
        });
        self.sessions.forget_user(ctx.user_id);
        updated?.ok_or(AuthError::SessionInvalid)
    }

    /// Asks for the current password again behind a session, under the same
    /// counter and lockout as logins. A lock refuses the confirmation (and
    /// logins) until it ends; it signs no session out.
    async fn confirm_password(&self, user: &UserRow, password: &str, ip: &str) -> Result<()> {
        self.verify_counted(
            user,
            password,
            ip,
            AttemptKind::Confirm,
            AuthError::WrongPassword,
        )
        .await
    }

    /// Changes the password and revokes every other session.
    pub async fn change_password(
        &self,
        ctx: &UserContext,
        old: &str,
        new: &str,
        ip: &str,
    ) -> Result<()> {
        let user = self.authorize(ctx).await?;
        self.confirm_password(&user, old, ip).await?;
        self.policy.check(new, &user.email, &user.username)?;
        let hash = self.hasher.hash(new).await?;
        let mut tx = self.pool.begin().await?;
        repo::set_password(&mut tx, user.id, &hash).await?;
        repo::revoke_sessions(
            &mut tx,
            user.id,
            Revoke::AllBut(Some(ctx.session_id)),
            "password changed",
            self.token_lifetime(),
        )
        .await?;
        tx.commit().await?;
        self.sessions.forget_user(user.id);
        Ok(())
    }

    /// Deactivates the caller's account and revokes all its sessions.
    pub async fn deactivate(&self, ctx: &UserContext, password: &str, ip: &str) -> Result<()> {
        let user = self.authorize(ctx).await?;
        self.confirm_password(&user, password, ip).await?;
        self.set_active(user.id, false, Actor::User).await.map(drop)
    }

    /// Activates or deactivates an account; deactivation revokes every session.
    pub async fn set_active(&self, user_id: Uuid, active: bool, by: Actor) -> Result<UserRow> {
        let mut tx = self.pool.begin().await?;
        let user = repo::set_active(&mut tx, user_id, active, by)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        if !active {
            repo::revoke_sessions(
                &mut tx,
                user_id,
                Revoke::AllBut(None),
                "account deactivated",
                self.token_lifetime(),
            )
            .await?;
        }
        tx.commit().await?;
        self.sessions.forget_user(user_id);
        Ok(user)
    }

    /// Erases the account: every row of schema `auth` that refers to the
    /// user goes, and `user.deleted` is queued for the other services.
    pub async fn delete_account(&self, ctx: &UserContext, password: &str, ip: &str) -> Result<()> {
        let user = self.authorize(ctx).await?;
        self.confirm_password(&user, password, ip).await?;
        let mut tx = self.pool.begin().await?;
        repo::revoke_sessions(
            &mut tx,
            user.id,
            Revoke::AllBut(None),
            "account deleted",
            self.token_lifetime(),
        )
        .await?;
        repo::delete_user(&mut tx, user.id).await?;
        let event = serde_json::json!({
            "user_id": user.id,
            "deleted_at": Utc::now(),
        });
        repo::insert_outbox(&mut tx, "user.deleted", &event).await?;
        tx.commit().await?;
        self.sessions.forget_user(user.id);
        tracing::info!(user_id = %user.id, "account deleted");
        Ok(())
    }

    pub async fn status(&self, ctx: &UserContext) -> Result<(String, Option<DateTime<Utc>>)> {
        let user = self.authorize(ctx).await?;
        let locked = user.locked_until(Utc::now());
        let status = match (user.is_active, locked) {
            (false, _) => "deactivated",
            (true, Some(_)) => "locked",
            (true, None) => "active",
        };
        Ok((status.to_owned(), locked))
    }

    pub async fn list_users(
        &self,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<UserRow>> {
        repo::list_users(&self.pool, after, i64::from(limit.clamp(1, 200))).await
    }

    pub async fn user(&self, user_id: Uuid) -> Result<UserRow> {
        repo::find_by_id(&self.pool, user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }
}
