//! Measures the raw argon2id verification rate with pai's default cost
//! settings on every core: the ceiling for logins per second.
//!
//! It runs two ways and reports the faster as the reference: the argon2
//! crate's own `verify_password` (a fresh 19 MiB working memory per hash) and
//! pai's `verify_with` on one reused working memory per thread, which is what
//! the auth service does. Both without any service around them.
//!
//! `cargo run --release -p pai-auth --example argon2_rate -- SECONDS`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pai_auth::password::{Argon2Settings, Memory, verify_with};

const PASSWORD: &str = "plum-orchard-lantern-42";

/// Verifications per second over `seconds`, one `verify` loop per core.
fn rate(seconds: u64, threads: usize, verify: impl Fn() -> bool + Sync) -> f64 {
    let done = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    assert!(verify(), "the password must verify");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let settings = Argon2Settings::default();
    let argon2 = settings.argon2()?;
    let stored = argon2
        .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .map_err(|e| e.to_string())?
        .to_string();
    let parsed = PasswordHash::new(&stored).map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);

    let half = (seconds / 2).max(1);
    let fresh = rate(half, threads, || {
        argon2.verify_password(PASSWORD.as_bytes(), &parsed).is_ok()
    });
    let reused = rate(half, threads, || {
        thread_local! {
            static MEMORY: std::cell::RefCell<Option<Memory>> = const { std::cell::RefCell::new(None) };
        }
        MEMORY.with_borrow_mut(|memory| {
            let memory = memory.get_or_insert_with(|| Memory::new(&argon2));
            verify_with(memory, PASSWORD, &stored).unwrap_or(false)
        })
    });
    eprintln!("argon2 crate verify_password (fresh memory): {fresh:.1}/s");
    eprintln!("verify_with on reused memory:                {reused:.1}/s");
    println!(
        "argon2id m={} t={} p={} threads={threads}: {:.1} verifications/s",
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        fresh.max(reused)
    );
    Ok(())
}
