//! Password hashing (argon2id on a bounded blocking pool) and the password
//! policy (minimum length, common passwords).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{AuthError, Result};

/// argon2id cost settings (OWASP's minimum is m=19 MiB, t=2, p=1).
#[derive(Debug, Clone, Copy)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords off the async workers, at most one hash per
/// core at a time so a login burst never stalls other requests or memory.
#[derive(Clone)]
pub struct Hasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified for unknown logins so they
    /// take as long as known ones.
    dummy: Arc<str>,
}

impl Hasher {
    pub fn new(settings: Argon2Settings) -> Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| AuthError::Hash(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let dummy = hash_with(&argon2, &uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(cores)),
            dummy: dummy.into(),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))?;
        let argon2 = Arc::clone(&self.argon2);
        tokio::task::spawn_blocking(move || work(&argon2))
            .await
            .map_err(|e| AuthError::Hash(e.to_string()))
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.blocking(move |argon2| hash_with(argon2, &password))
            .await?
    }

    /// Returns whether `password` matches `stored` (a PHC string).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool> {
        let password = password.to_owned();
        let stored = stored.to_owned();
        self.blocking(move |argon2| {
            PasswordHash::new(&stored)
                .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
                .map_err(|e| AuthError::Hash(e.to_string()))
        })
        .await?
    }

    /// Spends the time of one verification on a login that matched no user.
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        let dummy = Arc::clone(&self.dummy);
        self.verify(password, &dummy).await.map(drop)
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The most common passwords of public breach lists, lowercased.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Rules a new password must satisfy.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

impl PasswordPolicy {
    pub const MAX_LENGTH: usize = 128;

    /// Returns `AuthError::Policy` naming the first rule `password` breaks.
    pub fn check(&self, password: &str, email: &str, username: &str) -> Result<()> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(AuthError::Policy(format!(
                "min_length: the password must have at least {} characters",
                self.min_length
            )));
        }
        if length > Self::MAX_LENGTH {
            return Err(AuthError::Policy(format!(
                "max_length: the password must have at most {} characters",
                Self::MAX_LENGTH
            )));
        }
        let lower = password.to_lowercase();
        if is_common(&lower) {
            return Err(AuthError::Policy(
                "common_password: the password is too common; choose another".to_owned(),
            ));
        }
        let local_part = email.split('@').next().unwrap_or_default().to_lowercase();
        if lower == username.to_lowercase() || lower == email.to_lowercase() || lower == local_part
        {
            return Err(AuthError::Policy(
                "matches_identity: the password must not be your email or username".to_owned(),
            ));
        }
        Ok(())
    }
}

fn is_common(lower: &str) -> bool {
    COMMON_PASSWORDS.lines().any(|line| line.trim() == lower)
        || lower.chars().all(|c| lower.starts_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_broken_rule() {
        let policy = PasswordPolicy { min_length: 12 };
        let short = policy.check("short", "a@b.c", "a").unwrap_err();
        assert!(short.to_string().starts_with("min_length"));
        let common = policy.check("password1234", "a@b.c", "a").unwrap_err();
        assert!(common.to_string().starts_with("common_password"));
        let same = policy.check("aaaaaaaaaaaaa", "a@b.c", "a").unwrap_err();
        assert!(same.to_string().starts_with("common_password"));
        assert!(policy.check("correct horse battery", "a@b.c", "a").is_ok());
    }
}
