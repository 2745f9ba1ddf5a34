//! Password hashing (argon2id on one dedicated thread per core) and the
//! password policy (minimum length, common passwords).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

impl Argon2Settings {
    pub fn argon2(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(hash_error)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The working memory of one argon2 computation (`memory_kib` blocks of
/// 1 KiB). Allocating and filling 19 MiB for every login costs as much as a
/// tenth of the hash itself, so each hashing thread keeps one and reuses it:
/// argon2 writes every block before it reads it, so old contents never
/// matter.
pub struct Memory(Box<[Block]>);

impl Memory {
    pub fn new(argon2: &Argon2<'_>) -> Self {
        Self(vec![Block::default(); argon2.params().block_count()].into_boxed_slice())
    }
}

/// A password job for a hashing thread.
type Job = Box<dyn FnOnce(&Argon2<'static>, &mut Memory) + Send>;

/// Jobs that may wait per hashing thread. A verification takes about 30 ms
/// at the default cost, so a full queue is about two seconds of work: past
/// it, callers are told to come back ([`AuthError::Busy`]) instead of
/// queueing work no one will wait for.
pub const QUEUE_PER_THREAD: usize = 64;

/// Hashes and verifies passwords on one dedicated thread per core, off the
/// async workers, so a login burst never stalls other requests or memory.
/// Each thread keeps its working memory and takes the next queued job as
/// soon as it finishes one: no hand-off through the async runtime between
/// two hashes, and the memory stays warm on the thread that uses it. The
/// queue is bounded, and a job whose caller went away (a dropped request)
/// is skipped, not computed.
#[derive(Clone)]
pub struct Hasher {
    jobs: crossbeam_channel::Sender<Job>,
    /// Jobs skipped because their caller had gone.
    skipped: Arc<AtomicU64>,
    /// A real hash of a random password, verified for unknown logins so they
    /// take as long as known ones.
    dummy: Arc<str>,
}

impl Hasher {
    /// One hashing thread per core, each with [`QUEUE_PER_THREAD`] waiting jobs.
    pub fn new(settings: Argon2Settings) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self::with_threads(settings, cores, cores * QUEUE_PER_THREAD)
    }

    pub fn with_threads(settings: Argon2Settings, threads: usize, queue: usize) -> Result<Self> {
        let argon2 = settings.argon2()?;
        let dummy = hash_with(
            &argon2,
            &mut Memory::new(&argon2),
            &uuid::Uuid::new_v4().to_string(),
        )?;
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(queue);
        for i in 0..threads {
            let (argon2, queue) = (argon2.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = Memory::new(&argon2);
                    // Ends when every `Hasher` clone is dropped. A panicking
                    // job fails its caller, not the thread.
                    for job in queue {
                        let run = AssertUnwindSafe(|| job(&argon2, &mut memory));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a password job panicked");
                        }
                    }
                })
                .map_err(hash_error)?;
        }
        Ok(Self {
            jobs,
            skipped: Arc::default(),
            dummy: dummy.into(),
        })
    }

    /// How many jobs were skipped because their caller had gone.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>, &mut Memory) -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let skipped = Arc::clone(&self.skipped);
        self.jobs
            .try_send(Box::new(move |argon2, memory| {
                // The caller may have gone (a dropped request): no one waits
                // for the answer, so the work is not done.
                if done.is_closed() {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let _ = done.send(work(argon2, memory));
            }))
            .map_err(|err| match err {
                crossbeam_channel::TrySendError::Full(_) => AuthError::Busy,
                crossbeam_channel::TrySendError::Disconnected(_) => {
                    AuthError::Hash("the hashing threads have stopped".to_owned())
                }
            })?;
        result
            .await
            .map_err(|_| AuthError::Hash("a hashing thread failed".to_owned()))
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.blocking(move |argon2, memory| hash_with(argon2, memory, &password))
            .await?
    }

    /// Returns whether `password` matches `stored` (a PHC string).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool> {
        let password = password.to_owned();
        let stored = stored.to_owned();
        self.blocking(move |_, memory| verify_with(memory, &password, &stored))
            .await?
    }

    /// Spends the time of one verification on a login that matched no user.
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        let dummy = Arc::clone(&self.dummy);
        self.verify(password, &dummy).await.map(drop)
    }
}

fn hash_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::Hash(e.to_string())
}

/// Hashes `password` with a fresh salt into a PHC string, in `memory`.
pub fn hash_with(argon2: &Argon2<'_>, memory: &mut Memory, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(hash_error)?;
    let output = compute(
        argon2,
        memory,
        password,
        salt_bytes,
        Params::DEFAULT_OUTPUT_LEN,
    )?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(hash_error)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `stored` is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`), as an older
/// single-user install kept them: verified as such, and replaced by
/// argon2id at the next sign-in.
pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Checks `password` against `stored` (a PHC string) with the algorithm,
/// version and cost written in it, in `memory` when it is large enough;
/// or against a bcrypt hash ([`is_bcrypt`]).
pub fn verify_with(memory: &mut Memory, password: &str, stored: &str) -> Result<bool> {
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).map_err(hash_error);
    }
    let parsed = PasswordHash::new(stored).map_err(hash_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(AuthError::Hash(
            "stored hash has no salt or output".to_owned(),
        ));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(hash_error)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(hash_error)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(hash_error)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(hash_error)?;
    let computed = compute(&argon2, memory, password, salt_bytes, expected.len())?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// Runs `argon2` into an output of `len` bytes: in `memory` when it is
/// large enough for the cost (a stored hash may ask for more than the
/// current settings), else in a fresh allocation.
fn compute(
    argon2: &Argon2<'_>,
    memory: &mut Memory,
    password: &str,
    salt: &[u8],
    len: usize,
) -> Result<Output> {
    Output::init_with(len, |out| {
        let hashed = if memory.0.len() >= argon2.params().block_count() {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory.0[..])
        } else {
            argon2.hash_password_into(password.as_bytes(), salt, out)
        };
        hashed.map_err(Into::into)
    })
    .map_err(hash_error)
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

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_a_dropped_callers_job_is_skipped() {
        let hasher = Hasher::with_threads(Argon2Settings::default(), 1, 4).unwrap();
        let stored = hasher.hash("a password of some length").await.unwrap();

        // Twenty checks at once on one thread with four places: the thread
        // takes one, four wait, the rest are told to come back.
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            checks.spawn(async move { hasher.verify("a wrong password", &stored).await });
        }
        let (mut busy, mut answered) = (0, 0);
        while let Some(result) = checks.join_next().await {
            match result.unwrap() {
                Err(AuthError::Busy) => busy += 1,
                Ok(false) => answered += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            answered <= 5 && busy == 20 - answered,
            "busy {busy}, answered {answered}"
        );

        // Ten callers that give up at once: their jobs are skipped, and a
        // check queued behind them is answered.
        let hasher = Hasher::with_threads(Argon2Settings::default(), 1, 64).unwrap();
        for _ in 0..10 {
            let gone = tokio::time::timeout(
                std::time::Duration::ZERO,
                hasher.verify("a wrong password", &stored),
            )
            .await;
            assert!(gone.is_err());
        }
        assert!(
            hasher
                .verify("a password of some length", &stored)
                .await
                .unwrap()
        );
        assert!(hasher.skipped() >= 9, "skipped {}", hasher.skipped());
    }

    /// An unknown login verifies the dummy hash so that it takes as long as
    /// a known one: the dummy must cost what a user's hash costs, parameter
    /// for parameter (verification reads the cost from the PHC string).
    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_users_hash_costs() {
        let settings = Argon2Settings {
            memory_kib: 8 * 1024,
            iterations: 3,
            parallelism: 1,
        };
        let hasher = Hasher::with_threads(settings, 1, 4).unwrap();
        let user = hasher.hash("a password of some length").await.unwrap();
        let (user, dummy) = (
            PasswordHash::new(&user).unwrap(),
            PasswordHash::new(&hasher.dummy).unwrap(),
        );
        assert_eq!(user.algorithm, dummy.algorithm);
        assert_eq!(user.version, dummy.version);
        assert_eq!(user.params, dummy.params);
        assert_eq!(user.hash.map(|h| h.len()), dummy.hash.map(|h| h.len()));
        assert_eq!(
            Params::try_from(&dummy).unwrap().m_cost(),
            settings.memory_kib
        );
        hasher
            .verify_dummy("a password of some length")
            .await
            .unwrap();
    }

    fn small() -> Argon2<'static> {
        let settings = Argon2Settings {
            memory_kib: 64,
            iterations: 2,
            parallelism: 1,
        };
        settings.argon2().unwrap()
    }

    #[test]
    fn reused_memory_gives_the_crates_own_answers() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let argon2 = small();
        let mut memory = Memory::new(&argon2);
        // Dirty the memory with another password first: reuse must not matter.
        let other = hash_with(&argon2, &mut memory, "something else entirely").unwrap();
        let ours = hash_with(&argon2, &mut memory, "plum-orchard-lantern").unwrap();
        assert_ne!(other, ours);
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2
                .verify_password(b"plum-orchard-lantern", &parsed)
                .is_ok()
        );
        assert!(
            argon2
                .verify_password(b"plum-orchard-lanterns", &parsed)
                .is_err()
        );

        let theirs = argon2
            .hash_password(b"plum-orchard-lantern", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, "plum-orchard-lantern", &theirs).unwrap());
        assert!(!verify_with(&mut memory, "plum-orchard-lanter", &theirs).unwrap());
        assert!(verify_with(&mut memory, "plum-orchard-lantern", &ours).unwrap());
    }

    #[test]
    fn a_hash_with_a_larger_cost_than_the_memory_still_verifies() {
        use argon2::password_hash::PasswordHasher;
        let mut memory = Memory::new(&small());
        let larger = Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 2,
        }
        .argon2()
        .unwrap();
        let stored = larger
            .hash_password(b"a long enough password", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, "a long enough password", &stored).unwrap());
        assert!(!verify_with(&mut memory, "a long enough passwor", &stored).unwrap());
        assert!(verify_with(&mut memory, "x", "not a phc string").is_err());
    }
}
