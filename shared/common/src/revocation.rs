//! The set of revoked sessions a verifier must refuse before their tokens
//! expire, kept current by following the auth service's revocation feed.
//!
//! The feed is polled every [`POLL_INTERVAL`], so a revocation reaches every
//! follower well within a second. Entries are dropped once the session could
//! no longer hold a valid access token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use pai_proto::v1::RevocationFeedRequest;
use pai_proto::v1::auth_internal_client::AuthInternalClient;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::identity::{JwtKeys, ServiceCredential};

pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long one read of the feed may take.
pub const FEED_DEADLINE: Duration = Duration::from_secs(5);

/// A client of the auth service's revocation feed (service credential).
pub type FeedClient = AuthInternalClient<InterceptedService<Channel, ServiceCredential>>;

/// Revoked session ids, each with the time after which it no longer matters.
#[derive(Debug, Default)]
pub struct RevocationSet {
    revoked: RwLock<HashMap<Uuid, SystemTime>>,
    cursor: AtomicI64,
    synced: AtomicBool,
}

impl RevocationSet {
    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.revoked
            .read()
            .map(|set| set.contains_key(&session_id))
            .unwrap_or(true)
    }

    /// Whether the set has caught up with the feed at least once.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn insert(&self, session_id: Uuid, forget_after: SystemTime) {
        if let Ok(mut set) = self.revoked.write() {
            set.insert(session_id, forget_after);
        }
    }

    fn prune(&self, now: SystemTime) {
        if let Ok(mut set) = self.revoked.write() {
            set.retain(|_, forget_after| *forget_after > now);
        }
    }

    /// Reads the feed once and applies what is new.
    pub async fn poll_once(&self, client: &mut FeedClient) -> Result<(), tonic::Status> {
        let cursor = self.cursor.load(Ordering::Acquire);
        let feed = client
            .revocation_feed(RevocationFeedRequest { cursor })
            .await?
            .into_inner();
        for revocation in feed.revocations {
            let Ok(session_id) = Uuid::parse_str(&revocation.session_id) else {
                continue;
            };
            let forget_after = revocation
                .expires_at
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(86_400));
            self.insert(session_id, forget_after);
        }
        self.cursor.fetch_max(feed.next_cursor, Ordering::AcqRel);
        self.synced.store(true, Ordering::Release);
        self.prune(SystemTime::now());
        Ok(())
    }

    /// Follows the auth service's feed until `shutdown` is cancelled.
    pub async fn follow(&self, mut client: FeedClient, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(status) = self.poll_once(&mut client).await {
                tracing::warn!(code = ?status.code(), message = status.message(), "revocation feed unavailable");
            }
        }
    }
}

/// A client of the revocation feed of the auth service at `auth_url`, with
/// `service`'s credential.
pub fn feed_client(
    auth_url: &str,
    keys: Arc<JwtKeys>,
    service: &'static str,
) -> Result<FeedClient, tonic::transport::Error> {
    let channel = crate::grpc::channel_with_deadline(auth_url, FEED_DEADLINE)?;
    Ok(AuthInternalClient::with_interceptor(
        channel,
        ServiceCredential::new(keys, service),
    ))
}

/// A revocation set kept current by a task that follows the auth service
/// at `auth_url` until `shutdown`, for a service's `RequireUser`
/// interceptor: a revoked session's token is then refused on the service's
/// own port too, not only at the gateway.
pub fn follow_auth(
    auth_url: &str,
    keys: Arc<JwtKeys>,
    service: &'static str,
    shutdown: CancellationToken,
) -> Result<(Arc<RevocationSet>, tokio::task::JoinHandle<()>), tonic::transport::Error> {
    let client = feed_client(auth_url, keys, service)?;
    let set = Arc::new(RevocationSet::default());
    let task = tokio::spawn({
        let set = Arc::clone(&set);
        async move { set.follow(client, shutdown).await }
    });
    Ok((set, task))
}
