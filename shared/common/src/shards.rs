//! Search sharded by user: which shard owns a user, where each shard is
//! reached, and a client per shard.
//!
//! A user belongs to shard `jump(key(user), count)`: Lamping and Veach's
//! jump consistent hash (the `jumpch` crate) of a stable 64-bit key of the
//! user id. Going from `n` shards to `n + 1` moves only the users the new
//! shard takes (about one in `n + 1`), and none between the old shards.

use uuid::Uuid;

use crate::config::{ConfigError, Env};

/// The placeholder a `SEARCH_URL` template has for the shard's number.
pub const SHARD_PLACEHOLDER: &str = "{shard}";

/// One shard of `count`: the one a search replica serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The only shard of an unsharded service.
    pub const ONLY: Shard = Shard { index: 0, count: 1 };

    /// `SEARCH_SHARD` of `SEARCH_SHARDS` (defaults: shard 0 of 1).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let count = shard_count(env)?;
        let index: u32 = env.parse("SEARCH_SHARD", 0)?;
        if index >= count {
            return Err(ConfigError::new(
                "SEARCH_SHARD",
                format!("{index} is not below SEARCH_SHARDS ({count})"),
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether this shard owns `user`.
    pub fn owns(self, user: Uuid) -> bool {
        owner(user, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

/// `SEARCH_SHARDS`: at least 1 (the default).
fn shard_count(env: &Env) -> Result<u32, ConfigError> {
    match env.parse("SEARCH_SHARDS", 1u32)? {
        0 => Err(ConfigError::new("SEARCH_SHARDS", "must be at least 1")),
        count => Ok(count),
    }
}

/// The shard of `count` that owns `user`.
pub fn owner(user: Uuid, count: u32) -> u32 {
    let (high, low) = user.as_u64_pair();
    jumpch::hash(high ^ low, count.max(1))
}

/// Where each shard of the search service is reached, shard 0 first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardUrls(Vec<String>);

impl ShardUrls {
    /// One unsharded service at `url`.
    pub fn one(url: impl Into<String>) -> Self {
        Self(vec![url.into()])
    }

    /// The shards at `urls`, shard 0 first; `None` when there are none.
    pub fn new(urls: Vec<String>) -> Option<Self> {
        (!urls.is_empty()).then_some(Self(urls))
    }

    /// `SEARCH_URL` for `SEARCH_SHARDS` shards: with one shard a URL; with
    /// more, a template whose `{shard}` each shard's number replaces
    /// (`http://search-{shard}.search:50054`, the pods of a StatefulSet
    /// behind a headless Service) or a comma-separated list of as many
    /// URLs. Unset, `default` for shard 0 and the ports [`SHARD_PORT_STEP`]
    /// apart after it for the others (where one process running every
    /// shard listens by default).
    pub fn from_env(env: &Env, default: &str) -> Result<Self, ConfigError> {
        let count = shard_count(env)?;
        let Some(value) = env.get("SEARCH_URL") else {
            return Ok(Self(
                (0..count).map(|shard| nth_port(default, shard)).collect(),
            ));
        };
        if value.contains(SHARD_PLACEHOLDER) {
            return Ok(Self(
                (0..count)
                    .map(|shard| value.replace(SHARD_PLACEHOLDER, &shard.to_string()))
                    .collect(),
            ));
        }
        let urls: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.len() != count as usize {
            return Err(ConfigError::new(
                "SEARCH_URL",
                format!(
                    "names {} URL(s) for SEARCH_SHARDS={count}: give one URL per shard, \
                     or a template with {SHARD_PLACEHOLDER}",
                    urls.len()
                ),
            ));
        }
        Ok(Self(urls))
    }

    pub fn urls(&self) -> &[String] {
        &self.0
    }

    /// The URL of the shard that owns `user`.
    pub fn for_user(&self, user: Uuid) -> &str {
        &self.0[self.index_for(user)]
    }

    fn index_for(&self, user: Uuid) -> usize {
        owner(user, self.count()) as usize
    }

    fn count(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// A client for each shard, made by `connect` from its URL.
    pub fn connect<C, E>(
        &self,
        mut connect: impl FnMut(&str) -> Result<C, E>,
    ) -> Result<Shards<C>, E> {
        Ok(Shards(
            self.0
                .iter()
                .map(|url| connect(url))
                .collect::<Result<_, _>>()?,
        ))
    }
}

/// How far apart the ports of shards running in one process are (shard N
/// listens on the first shard's port + N × this), clear of the other
/// services' ports beside search's.
pub const SHARD_PORT_STEP: u16 = 100;

/// `url` with its port moved up for shard `n` (as is, without a port).
fn nth_port(url: &str, n: u32) -> String {
    if n == 0 {
        return url.to_owned();
    }
    match url.rsplit_once(':') {
        Some((head, port)) => match port.parse::<u32>() {
            Ok(port) => format!("{head}:{}", port + n * u32::from(SHARD_PORT_STEP)),
            Err(_) => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl std::fmt::Display for ShardUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A client for each shard, shard 0 first (made by [`ShardUrls::connect`]).
#[derive(Debug, Clone)]
pub struct Shards<C>(Vec<C>);

impl<C: Clone> Shards<C> {
    /// The client of the shard that owns `user`.
    pub fn for_user(&self, user: Uuid) -> C {
        let count = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0[owner(user, count) as usize].clone()
    }

    /// Every shard's client, shard 0 first.
    pub fn all(&self) -> &[C] {
        &self.0
    }
}

/// A client of search's internal service on each shard, as `caller`
/// (indexing and deleting: messages up to 64 MiB).
pub type SearchInternal = pai_proto::v1::search_internal_client::SearchInternalClient<
    tonic::service::interceptor::InterceptedService<
        crate::grpc::GrpcChannel,
        crate::identity::ServiceCredential,
    >,
>;

/// [`SearchInternal`] clients of every shard at `urls`, calling as the
/// service `caller`, in process where `local` serves them.
pub fn search_internal(
    local: &crate::grpc::LocalServers,
    urls: &ShardUrls,
    keys: &std::sync::Arc<crate::identity::JwtKeys>,
    caller: &'static str,
) -> anyhow::Result<Shards<SearchInternal>> {
    use anyhow::Context as _;
    urls.connect(|url| {
        let channel = local
            .channel(url)
            .with_context(|| format!("SEARCH_URL {url:?}"))?;
        anyhow::Ok(
            pai_proto::v1::search_internal_client::SearchInternalClient::with_interceptor(
                channel,
                crate::identity::ServiceCredential::new(std::sync::Arc::clone(keys), caller),
            )
            .max_encoding_message_size(64 * 1024 * 1024),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn one_shard_owns_everyone() {
        assert!(users(100).into_iter().all(|u| Shard::ONLY.owns(u)));
    }

    #[test]
    fn a_shard_more_moves_only_the_users_it_takes() {
        let users = users(10_000);
        for count in 1..8u32 {
            let mut moved = 0;
            for &user in &users {
                let (before, after) = (owner(user, count), owner(user, count + 1));
                if before != after {
                    assert_eq!(after, count, "a user moved between old shards");
                    moved += 1;
                }
            }
            // About one in count + 1 moves.
            let expected = users.len() as f64 / f64::from(count + 1);
            assert!(
                (moved as f64 - expected).abs() < expected * 0.1,
                "{count} → {}: {moved} moved, ~{expected:.0} expected",
                count + 1
            );
        }
    }

    #[test]
    fn the_owner_is_stable() {
        let user = Uuid::parse_str("5f0c8a4e-3b1d-4c2a-9e7f-0a1b2c3d4e5f").expect("uuid");
        let owners: Vec<u32> = (1..=4).map(|count| owner(user, count)).collect();
        // The same on every machine and in every version: a change here
        // would move users between running shards.
        assert_eq!(owners, [0, 1, 1, 1]);
    }

    #[test]
    fn urls_come_from_a_template_or_a_list() {
        let env = Env::from_pairs([
            ("SEARCH_SHARDS", "3"),
            ("SEARCH_URL", "http://search-{shard}.search:50054"),
        ]);
        let urls = ShardUrls::from_env(&env, "unused").expect("template");
        assert_eq!(
            urls.urls(),
            [
                "http://search-0.search:50054",
                "http://search-1.search:50054",
                "http://search-2.search:50054"
            ]
        );
        let env = Env::from_pairs([("SEARCH_SHARDS", "2"), ("SEARCH_URL", "http://a, http://b")]);
        let urls = ShardUrls::from_env(&env, "unused").expect("list");
        assert_eq!(urls.urls(), ["http://a", "http://b"]);
        let user = Uuid::new_v4();
        assert_eq!(
            urls.for_user(user),
            urls.urls()[owner(user, 2) as usize].as_str()
        );
        let env = Env::from_pairs::<&str, &str>([]);
        assert_eq!(
            ShardUrls::from_env(&env, "http://127.0.0.1:50054").expect("default"),
            ShardUrls::one("http://127.0.0.1:50054")
        );
        let env = Env::from_pairs([("SEARCH_SHARDS", "2")]);
        assert_eq!(
            ShardUrls::from_env(&env, "http://127.0.0.1:50054")
                .expect("default")
                .urls(),
            ["http://127.0.0.1:50054", "http://127.0.0.1:50154"]
        );
    }

    #[test]
    fn a_wrong_shard_setting_names_the_variable() {
        let env = Env::from_pairs([("SEARCH_SHARDS", "2"), ("SEARCH_URL", "http://a")]);
        assert_eq!(
            ShardUrls::from_env(&env, "x").expect_err("one URL").name,
            "SEARCH_URL"
        );
        let env = Env::from_pairs([("SEARCH_SHARDS", "0")]);
        assert_eq!(
            Shard::from_env(&env).expect_err("none").name,
            "SEARCH_SHARDS"
        );
        let env = Env::from_pairs([("SEARCH_SHARDS", "2"), ("SEARCH_SHARD", "2")]);
        assert_eq!(
            Shard::from_env(&env).expect_err("too high").name,
            "SEARCH_SHARD"
        );
    }
}
