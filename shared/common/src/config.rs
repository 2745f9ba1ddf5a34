//! Typed configuration read from the environment (and a `.env` file).
//!
//! Settings are read through an [`Env`] map rather than `std::env` directly,
//! so tests build their own without touching the process environment. A
//! missing or invalid value is a [`ConfigError`] naming the variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// A setting that is missing or cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(name: &str, reason: impl Display) -> Self {
        Self {
            name: name.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// The variables settings are read from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Returns the process environment, over the `.env` file of the working
    /// directory when there is one (the process environment wins).
    pub fn from_process() -> Self {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(iter) = dotenvy::from_path_iter(".env") {
            vars.extend(iter.flatten());
        }
        vars.extend(std::env::vars());
        Self { vars }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns a copy with `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// Every variable, for a child process's environment.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Returns the raw value, treating an empty string as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    pub fn parse<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| ConfigError::new(name, format!("invalid value {raw:?}: {e}"))),
        }
    }

    pub fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(name, default).map(Duration::from_secs)
    }
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
}

impl DatabaseSettings {
    pub const DEFAULT_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/pai?sslmode=disable";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let pool_size = env.parse("DB_POOL_SIZE", 10u32)?;
        if pool_size == 0 {
            return Err(ConfigError::new("DB_POOL_SIZE", "must be at least 1"));
        }
        Ok(Self {
            url: env.string("DATABASE_URL", Self::DEFAULT_URL),
            pool_size,
        })
    }
}

/// RabbitMQ connection settings.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: String,
    /// The topic exchange that carries events such as `user.deleted`.
    pub events_exchange: String,
}

impl AmqpSettings {
    pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.string("AMQP_URL", Self::DEFAULT_URL),
            events_exchange: env.string("AMQP_EVENTS_EXCHANGE", "pai.events"),
        })
    }
}

/// Token signing and verification settings.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub secret: SecretString,
    pub issuer: String,
    pub audience: String,
    pub access_lifetime: Duration,
}

impl JwtSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = env.required("JWT_SECRET_KEY")?;
        check_signing_key(&secret).map_err(|reason| {
            ConfigError::new(
                "JWT_SECRET_KEY",
                format!("{reason} (generate one with `openssl rand -base64 48`)"),
            )
        })?;
        let algorithm = env.string("JWT_ALGORITHM", "HS256");
        if algorithm != "HS256" {
            return Err(ConfigError::new(
                "JWT_ALGORITHM",
                format!("{algorithm:?} is not supported yet; use HS256"),
            ));
        }
        let minutes = env.parse("JWT_EXPIRATION_MINUTES", 15u64)?;
        if minutes == 0 {
            return Err(ConfigError::new(
                "JWT_EXPIRATION_MINUTES",
                "must be at least 1",
            ));
        }
        Ok(Self {
            secret: SecretString::from(secret),
            issuer: env.string("JWT_ISSUER", "pai"),
            audience: env.string("JWT_AUDIENCE", "pai-api"),
            access_lifetime: Duration::from_secs(minutes * 60),
        })
    }
}

/// Parts of the placeholder keys that examples and tutorials ship with.
const PLACEHOLDER_MARKS: [&str; 7] = [
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "your-secret",
    "your_secret",
];

/// The fewest bits of estimated entropy a signing key may have.
pub const MIN_KEY_BITS: f64 = 96.0;

/// A rough upper bound on the entropy of `key` in bits: the smaller of its
/// characters' Shannon entropy times its length and its distinct character
/// pairs times the bits of one character. The second term catches a key
/// made of a repeated phrase, which the first counts in full.
pub fn estimated_key_bits(key: &str) -> f64 {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 2 {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in &chars {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let n = chars.len() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&count| {
            let p = count as f64 / n;
            -p * p.log2()
        })
        .sum();
    let pairs: std::collections::HashSet<(char, char)> =
        chars.windows(2).map(|w| (w[0], w[1])).collect();
    let alphabet_bits = (counts.len() as f64).log2();
    (per_char * n).min(pairs.len() as f64 * alphabet_bits)
}

/// Refuses a signing key that is short, a known placeholder (such as
/// `.env.example`'s) or of low entropy: anyone who guesses it can sign tokens.
pub fn check_signing_key(key: &str) -> Result<(), String> {
    if key.len() < 32 {
        return Err("must be at least 32 bytes".into());
    }
    let lower = key.to_ascii_lowercase();
    if PLACEHOLDER_MARKS.iter().any(|mark| lower.contains(mark)) {
        return Err("is a placeholder from an example; set a random key".into());
    }
    let bits = estimated_key_bits(key);
    if bits < MIN_KEY_BITS {
        return Err(format!(
            "has too little entropy (about {bits:.0} bits, at least {MIN_KEY_BITS:.0} needed): \
             use a random key, not a phrase"
        ));
    }
    Ok(())
}

/// The program run as `PROGRAM extract FILE` to read a PDF in a child
/// process (`PAI_EXTRACT_PROGRAM`; by default this very program).
pub fn extract_program(env: &Env) -> Result<std::path::PathBuf, ConfigError> {
    match env.get("PAI_EXTRACT_PROGRAM") {
        Some(path) => Ok(std::path::PathBuf::from(path)),
        None => std::env::current_exe().map_err(|e| {
            ConfigError::new(
                "PAI_EXTRACT_PROGRAM",
                format!("cannot find this program: {e}"),
            )
        }),
    }
}

/// Where each service listens and where the others reach it.
#[derive(Debug, Clone)]
pub struct ServiceAddrs {
    pub auth_listen: String,
    pub auth_url: String,
    pub documents_listen: String,
    pub documents_url: String,
    pub search_listen: String,
    /// Where each search shard is reached (`SEARCH_URL`, `SEARCH_SHARDS`).
    pub search_url: crate::shards::ShardUrls,
    pub inference_listen: String,
    pub inference_url: String,
    pub mail_listen: String,
    pub mail_url: String,
    /// Whether services started in one process call each other in process
    /// (`IN_PROCESS_CALLS`, default true) rather than over loopback.
    pub in_process_calls: bool,
}

impl ServiceAddrs {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            auth_listen: env.string("AUTH_GRPC_ADDR", "127.0.0.1:50051"),
            auth_url: env.string("AUTH_URL", "http://127.0.0.1:50051"),
            documents_listen: env.string("DOCUMENTS_GRPC_ADDR", "127.0.0.1:50052"),
            documents_url: env.string("DOCUMENTS_URL", "http://127.0.0.1:50052"),
            search_listen: env.string("SEARCH_GRPC_ADDR", "127.0.0.1:50054"),
            search_url: crate::shards::ShardUrls::from_env(env, "http://127.0.0.1:50054")?,
            inference_listen: env.string("INFERENCE_GRPC_ADDR", "127.0.0.1:50055"),
            inference_url: env.string("INFERENCE_URL", "http://127.0.0.1:50055"),
            mail_listen: env.string("MAIL_SYNC_GRPC_ADDR", "127.0.0.1:50053"),
            mail_url: env.string("MAIL_SYNC_URL", "http://127.0.0.1:50053"),
            in_process_calls: env.parse("IN_PROCESS_CALLS", true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const SECRET: &str = "Kq3v9ZxR2mTt7LpW8yNc4HbF6jDs1GaE";

    fn jwt(pairs: &[(&str, &str)]) -> Result<JwtSettings, ConfigError> {
        let env = Env::from_pairs(pairs.iter().copied()).with("JWT_SECRET_KEY", SECRET);
        JwtSettings::from_env(&env)
    }

    #[test]
    fn jwt_settings_default_to_hs256_and_a_15_minute_access_token() {
        let settings = jwt(&[]).expect("defaults are valid");
        assert_eq!(settings.secret.expose_secret(), SECRET);
        assert_eq!(settings.issuer, "pai");
        assert_eq!(settings.audience, "pai-api");
        assert_eq!(settings.access_lifetime, Duration::from_secs(15 * 60));
        let settings = jwt(&[("JWT_ALGORITHM", "HS256"), ("JWT_EXPIRATION_MINUTES", "5")])
            .expect("HS256 spelled out is valid");
        assert_eq!(settings.access_lifetime, Duration::from_secs(5 * 60));
        // An empty value counts as unset, like every other setting.
        assert!(jwt(&[("JWT_ALGORITHM", "")]).is_ok());
    }

    #[test]
    fn an_algorithm_other_than_hs256_stops_start_up() {
        for algorithm in ["EdDSA", "RS256", "none", "hs256"] {
            let err =
                jwt(&[("JWT_ALGORITHM", algorithm)]).expect_err("only HS256 is accepted so far");
            assert_eq!(err.name, "JWT_ALGORITHM", "{algorithm:?}");
            assert!(err.reason.contains("use HS256"), "{algorithm:?}: {err}");
        }
    }

    #[test]
    fn random_keys_pass_the_entropy_check() {
        // `openssl rand -hex 16`, `-base64 48`, and the test helpers' keys.
        for key in [
            "bfd8b4173c7293a1289e11beeb27f8ec",
            "Y2lliuogzpc4iRPfMFLutaXTOlj//vuqL6A4AityrLl63/nmybulXArBLLh4utR2",
            "test-secret-d17d164df9ed47c0b1b0d89012faddd6",
        ] {
            assert_eq!(check_signing_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn a_missing_or_short_secret_and_a_zero_lifetime_are_refused() {
        let err = JwtSettings::from_env(&Env::default()).expect_err("no secret");
        assert_eq!(err.name, "JWT_SECRET_KEY");
        let short = Env::default().with("JWT_SECRET_KEY", "too short");
        let err = JwtSettings::from_env(&short).expect_err("a 9-byte secret");
        assert_eq!(err.name, "JWT_SECRET_KEY");
        assert!(err.reason.contains("at least 32 bytes"), "{err}");
        for key in [
            "change-me-to-at-least-32-random-bytes",
            "CHANGEME-CHANGEME-CHANGEME-CHANGEME",
            "your-secret-key-goes-here-please-now",
        ] {
            let err =
                JwtSettings::from_env(&Env::default().with("JWT_SECRET_KEY", key)).expect_err(key);
            assert!(err.reason.contains("placeholder"), "{key}: {err}");
        }
        for key in [
            "a".repeat(48).as_str(),
            "bench-secret-bench-secret-bench-secret",
            "local-test-secret-local-test-secret",
            "0101010101010101010101010101010101010101",
        ] {
            let err =
                JwtSettings::from_env(&Env::default().with("JWT_SECRET_KEY", key)).expect_err(key);
            assert!(err.reason.contains("too little entropy"), "{key}: {err}");
            // One clear line.
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        for minutes in ["0", "-1", "fifteen"] {
            let err = jwt(&[("JWT_EXPIRATION_MINUTES", minutes)]).expect_err(minutes);
            assert_eq!(err.name, "JWT_EXPIRATION_MINUTES", "{minutes:?}");
        }
    }
}
