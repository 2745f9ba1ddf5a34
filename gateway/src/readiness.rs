//! Readiness: PostgreSQL, RabbitMQ and the backend services answer, and the
//! revocation feed has been read (until then a revoked token could pass).

use std::collections::BTreeMap;
use std::time::Duration;

use pai_common::revocation::RevocationSet;
use serde::Serialize;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Readiness {
    pub pool: PgPool,
    pub amqp_url: String,
    /// The backend services the gateway forwards to, by name.
    pub services: Vec<(&'static str, Channel)>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessReport {
    pub ready: bool,
    pub postgres: String,
    pub rabbitmq: String,
    /// Each backend service's gRPC health.
    pub services: BTreeMap<String, String>,
    pub revocation_feed: String,
}

fn outcome<E: std::fmt::Display>(
    result: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> String {
    match result {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => format!("error: {err}"),
        Err(_) => "error: timed out".to_owned(),
    }
}

impl Readiness {
    pub async fn check(&self, revocations: &RevocationSet) -> ReadinessReport {
        let postgres = tokio::time::timeout(CHECK_TIMEOUT, async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
        });
        let rabbitmq = tokio::time::timeout(CHECK_TIMEOUT, async {
            let conn = pai_common::amqp::connect(&self.amqp_url).await?;
            conn.close(200, "readiness check")
                .await
                .map_err(pai_common::amqp::AmqpError::from)
        });
        let services =
            futures::future::join_all(self.services.iter().map(|(name, channel)| async move {
                let check = tokio::time::timeout(CHECK_TIMEOUT, async {
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
                ((*name).to_owned(), outcome(check))
            }));
        let (postgres, rabbitmq, services) = tokio::join!(postgres, rabbitmq, services);
        let services: BTreeMap<String, String> = services.into_iter().collect();
        let report = ReadinessReport {
            ready: false,
            postgres: outcome(postgres),
            rabbitmq: outcome(rabbitmq),
            services,
            revocation_feed: if revocations.is_synced() {
                "ok"
            } else {
                "error: not synced yet"
            }
            .to_owned(),
        };
        let ready = [&report.postgres, &report.rabbitmq, &report.revocation_feed]
            .into_iter()
            .chain(report.services.values())
            .all(|s| s == "ok");
        ReadinessReport { ready, ..report }
    }
}
