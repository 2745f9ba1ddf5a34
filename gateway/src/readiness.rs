//! Readiness: PostgreSQL, RabbitMQ and the backend services answer, and the
//! revocation feed has been read (until then a revoked token could pass).
//!
//! `/readyz` needs no credential, so it answers from the last check while
//! that is at most [`MAX_AGE`] old ([`FAILED_MAX_AGE`] when something
//! failed); otherwise the first caller runs a new one and those arriving
//! meanwhile wait for it (one check in flight at a time, whatever the
//! traffic). RabbitMQ is checked on one connection kept
//! open, not on a new one per check. Each dependency reads `ok` or
//! `failed`; why it failed goes to the log, never to the caller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use pai_common::revocation::RevocationSet;
use serde::Serialize;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;

/// How long one dependency's check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How old an answer may be.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// How old an answer with a failure may be: a stack starting up, or
/// recovering, reads ready soon after it is.
pub const FAILED_MAX_AGE: Duration = Duration::from_millis(500);

const OK: &str = "ok";
const FAILED: &str = "failed";

pub struct Readiness {
    pool: PgPool,
    amqp_url: String,
    /// The backend services the gateway forwards to, by name.
    services: Vec<(&'static str, Channel)>,
    /// The last check and when it finished.
    last: std::sync::Mutex<Option<(Instant, Arc<Checked>)>>,
    /// Held while a check runs.
    running: tokio::sync::Mutex<()>,
    /// The broker connection checks reuse.
    amqp: tokio::sync::Mutex<Option<lapin::Connection>>,
    checks: AtomicU64,
}

/// The outcome of the checks that go over the network.
#[derive(Debug)]
struct Checked {
    postgres: bool,
    rabbitmq: bool,
    services: BTreeMap<String, bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessReport {
    pub ready: bool,
    /// `ok` or `failed`.
    pub postgres: &'static str,
    /// `ok` or `failed`.
    pub rabbitmq: &'static str,
    /// Each backend service's gRPC health: `ok` or `failed`.
    pub services: BTreeMap<String, &'static str>,
    /// `ok` once the revocation feed has been read, else `failed`.
    pub revocation_feed: &'static str,
}

impl Checked {
    fn max_age(&self) -> Duration {
        if self.postgres && self.rabbitmq && self.services.values().all(|ok| *ok) {
            MAX_AGE
        } else {
            FAILED_MAX_AGE
        }
    }
}

fn word(ok: bool) -> &'static str {
    if ok { OK } else { FAILED }
}

/// Whether `check` succeeded within [`CHECK_TIMEOUT`]; logs why not.
async fn passes<E: std::fmt::Display>(
    dependency: &str,
    check: impl Future<Output = Result<(), E>>,
) -> bool {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(dependency, error = %err, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(dependency, timeout = ?CHECK_TIMEOUT, "readiness check timed out");
            false
        }
    }
}

impl Readiness {
    pub fn new(pool: PgPool, amqp_url: String, services: Vec<(&'static str, Channel)>) -> Self {
        Self {
            pool,
            amqp_url,
            services,
            last: std::sync::Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
            amqp: tokio::sync::Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }

    /// How many checks have run since start.
    #[cfg(test)]
    fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    fn fresh(&self) -> Option<Arc<Checked>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, checked)| at.elapsed() <= checked.max_age())
            .map(|(_, checked)| Arc::clone(checked))
    }

    /// The report: from the last check while it is fresh, else from a new one.
    pub async fn report(&self, revocations: &RevocationSet) -> ReadinessReport {
        let checked = match self.fresh() {
            Some(checked) => checked,
            None => {
                let _running = self.running.lock().await;
                // Whoever held the lock before may have just checked.
                match self.fresh() {
                    Some(checked) => checked,
                    None => {
                        let checked = Arc::new(self.check().await);
                        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some((Instant::now(), Arc::clone(&checked)));
                        checked
                    }
                }
            }
        };
        let feed = revocations.is_synced();
        let ready =
            checked.postgres && checked.rabbitmq && feed && checked.services.values().all(|ok| *ok);
        ReadinessReport {
            ready,
            postgres: word(checked.postgres),
            rabbitmq: word(checked.rabbitmq),
            services: checked
                .services
                .iter()
                .map(|(name, ok)| (name.clone(), word(*ok)))
                .collect(),
            revocation_feed: word(feed),
        }
    }

    async fn check(&self) -> Checked {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let postgres = passes("postgres", async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
        });
        let rabbitmq = passes("rabbitmq", self.check_broker());
        let services =
            futures::future::join_all(self.services.iter().map(|(name, channel)| async move {
                let ok = passes(name, async {
                    let response = HealthClient::new(channel.clone())
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await?;
                    if response.into_inner().status == ServingStatus::Serving as i32 {
                        Ok(())
                    } else {
                        Err(tonic::Status::unavailable("not serving"))
                    }
                })
                .await;
                ((*name).to_owned(), ok)
            }));
        let (postgres, rabbitmq, services) = tokio::join!(postgres, rabbitmq, services);
        Checked {
            postgres,
            rabbitmq,
            services: services.into_iter().collect(),
        }
    }

    /// Opens and closes a channel on the kept connection, connecting
    /// first when there is none or it broke.
    async fn check_broker(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut kept = self.amqp.lock().await;
        if !kept.as_ref().is_some_and(|c| c.status().connected()) {
            *kept = None;
            *kept = Some(pai_common::amqp::connect(&self.amqp_url).await?);
        }
        let Some(conn) = kept.as_ref() else {
            return Ok(());
        };
        let probe = async {
            let channel = conn.create_channel().await?;
            channel.close(200, "readiness check").await
        };
        if let Err(err) = probe.await {
            *kept = None;
            return Err(err.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dependency unreachable: a closed port on this machine.
    fn unreachable() -> Readiness {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy("postgres://pai:secret-password@127.0.0.1:1/pai")
            .unwrap();
        let channel = pai_common::grpc::channel("http://127.0.0.1:1").unwrap();
        Readiness::new(
            pool,
            "amqp://pai:secret-password@127.0.0.1:1/%2f".to_owned(),
            vec![("auth", channel.clone()), ("search", channel)],
        )
    }

    #[tokio::test]
    async fn failures_say_failed_and_nothing_more() {
        let readiness = unreachable();
        let report = readiness.report(&RevocationSet::default()).await;
        let body = serde_json::to_value(&report).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "ready": false,
                "postgres": "failed",
                "rabbitmq": "failed",
                "services": {"auth": "failed", "search": "failed"},
                "revocation_feed": "failed",
            })
        );
    }

    #[tokio::test]
    async fn callers_share_one_check_while_it_is_fresh() {
        let readiness = Arc::new(unreachable());
        let revocations = Arc::new(RevocationSet::default());
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let (readiness, revocations) = (Arc::clone(&readiness), Arc::clone(&revocations));
                tokio::spawn(async move { readiness.report(&revocations).await })
            })
            .collect();
        for call in calls {
            assert!(!call.await.unwrap().ready);
        }
        assert_eq!(readiness.checks(), 1, "one check for 20 concurrent calls");
        readiness.report(&revocations).await;
        assert_eq!(readiness.checks(), 1, "a fresh answer is reused");

        // Once the answer is older than the limit, the next call checks again.
        if let Some((at, _)) = readiness.last.lock().unwrap().as_mut() {
            *at = at
                .checked_sub(FAILED_MAX_AGE + Duration::from_millis(1))
                .unwrap();
        }
        readiness.report(&revocations).await;
        assert_eq!(readiness.checks(), 2);
    }
}
