//! Measures the raw argon2id verification rate with pai's default cost
//! settings on every core: the ceiling for logins per second.
//!
//! `cargo run --release -p pai-auth --example argon2_rate -- SECONDS`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use pai_auth::password::Argon2Settings;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let settings = Argon2Settings::default();
    let params = Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| e.to_string())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let password = b"plum-orchard-lantern-42";
    let stored = argon2
        .hash_password(password, &SaltString::generate(&mut OsRng))
        .map_err(|e| e.to_string())?
        .to_string();
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done = Arc::clone(&done);
            let argon2 = argon2.clone();
            let stored = stored.clone();
            scope.spawn(move || {
                let parsed = PasswordHash::new(&stored).expect("own hash parses");
                while Instant::now() < deadline {
                    let ok = argon2.verify_password(password, &parsed).is_ok();
                    assert!(ok);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let rate = done.load(Ordering::Relaxed) as f64 / seconds as f64;
    println!(
        "argon2id m={} t={} p={} threads={threads}: {rate:.1} verifications/s",
        settings.memory_kib, settings.iterations, settings.parallelism
    );
    Ok(())
}
