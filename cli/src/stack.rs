//! Starts any set of pai's services in this process, each on its own
//! listener, talking gRPC over loopback exactly as they would in a cluster.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use pai_auth::AuthSettings;
use pai_common::Env;
use pai_gateway::GatewaySettings;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long stopping services may take before the process gives up on them.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// A service `pai run --service NAME` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Auth,
    Gateway,
}

impl Service {
    pub const ALL: [Service; 2] = [Service::Auth, Service::Gateway];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Gateway => "gateway",
        }
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|service| service.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown service {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Running services and where they listen.
pub struct Stack {
    pub gateway_addr: Option<SocketAddr>,
    pub auth_addr: Option<SocketAddr>,
    tasks: JoinSet<(Service, anyhow::Result<()>)>,
    shutdown: CancellationToken,
}

/// Runs every migration of the services given (the schema each owns).
pub async fn migrate(env: &Env, services: &[Service]) -> anyhow::Result<()> {
    let database = pai_common::config::DatabaseSettings::from_env(env)?;
    pai_common::db::ensure_database(&database.url).await?;
    let pool = pai_common::db::pool(&database)?;
    for service in services {
        match service {
            Service::Auth => {
                pai_common::db::migrate(&pool, pai_auth::SCHEMA, &pai_auth::MIGRATOR).await?;
                tracing::info!(schema = pai_auth::SCHEMA, "migrations applied");
            }
            Service::Gateway => {}
        }
    }
    pool.close().await;
    Ok(())
}

impl Stack {
    /// Validates every setting, binds every listener, then starts the
    /// services. Nothing binds when a setting is wrong.
    pub async fn start(env: &Env, services: &[Service]) -> anyhow::Result<Self> {
        let auth_settings = services
            .contains(&Service::Auth)
            .then(|| AuthSettings::from_env(env))
            .transpose()?;
        let mut gateway_settings = services
            .contains(&Service::Gateway)
            .then(|| GatewaySettings::from_env(env))
            .transpose()?;
        let addrs = pai_common::config::ServiceAddrs::from_env(env)?;

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut stack = Self {
            gateway_addr: None,
            auth_addr: None,
            tasks: JoinSet::new(),
            shutdown: shutdown.clone(),
        };

        if let Some(settings) = auth_settings {
            let (listener, addr) = pai_common::grpc::bind(&addrs.auth_listen)
                .await
                .with_context(|| format!("binding AUTH_GRPC_ADDR {}", addrs.auth_listen))?;
            let pool = pai_common::db::pool(&settings.database)?;
            // In one process the gateway reaches auth where it really listens.
            if let Some(gateway) = gateway_settings.as_mut() {
                gateway.services.auth_url = format!("http://{addr}");
            }
            stack.auth_addr = Some(addr);
            let token = shutdown.clone();
            tasks.spawn(async move {
                (
                    Service::Auth,
                    pai_auth::serve(settings, pool, listener, token).await,
                )
            });
        }
        if let Some(settings) = gateway_settings {
            let bind = settings.bind_addr();
            let (listener, addr) = pai_common::grpc::bind(&bind)
                .await
                .with_context(|| format!("binding HOST:PORT {bind}"))?;
            stack.gateway_addr = Some(addr);
            let token = shutdown.clone();
            tasks.spawn(async move {
                (
                    Service::Gateway,
                    pai_gateway::serve(settings, listener, token).await,
                )
            });
        }
        stack.tasks = tasks;
        Ok(stack)
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until a service stops (or `shutdown` is cancelled), then stops
    /// the rest and returns the first error.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            // One service ending ends the process: stop the others too.
            self.shutdown.cancel();
            match joined {
                Ok((service, Err(err))) => {
                    tracing::error!(service = service.name(), error = %format!("{err:#}"), "service failed");
                    first_error.get_or_insert(err);
                }
                Ok((service, Ok(()))) => {
                    tracing::info!(service = service.name(), "service stopped")
                }
                Err(err) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!("service task: {err}"));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every service and waits for them, at most [`GRACE_PERIOD`].
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(GRACE_PERIOD, self.wait())
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "services still running after {GRACE_PERIOD:?}"
                ))
            })
    }
}
