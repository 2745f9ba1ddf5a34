//! Starts any set of pai's services in this process, each on its own
//! listener as it would run in a cluster. Services started together call
//! each other in process (`LocalServers`: still gRPC, with the same codecs,
//! metadata, interceptors and status codes, but no HTTP/2 over loopback);
//! the listeners serve everyone else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use pai_auth::AuthSettings;
use pai_common::Env;
use pai_common::grpc::LocalServers;
use pai_common::shards::{SHARD_PORT_STEP, Shard, ShardUrls};
use pai_documents::DocumentsSettings;
use pai_gateway::GatewaySettings;
use pai_inference::{AskSettings, InferenceSettings};
use pai_mail_sync::MailSettings;
use pai_search::SearchSettings;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long stopping services may take before the process gives up on them.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// A service `pai run --service NAME` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Auth,
    Inference,
    Search,
    Documents,
    MailSync,
    Gateway,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Auth,
        Service::Inference,
        Service::Search,
        Service::Documents,
        Service::MailSync,
        Service::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Inference => "inference",
            Self::Search => "search",
            Self::Documents => "documents",
            Self::MailSync => "mail-sync",
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
    /// Shard 0's (or the only) search listener.
    pub search_addr: Option<SocketAddr>,
    pub documents_addr: Option<SocketAddr>,
    pub inference_addr: Option<SocketAddr>,
    pub mail_addr: Option<SocketAddr>,
    tasks: JoinSet<(Service, anyhow::Result<()>)>,
    /// Which service each task runs.
    names: HashMap<tokio::task::Id, Service>,
    shutdown: CancellationToken,
}

/// Binds `addr`, naming `variable` when it fails.
async fn bind(addr: &str, variable: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    pai_common::grpc::bind(addr)
        .await
        .with_context(|| format!("binding {variable} {addr}"))
}

/// `listen` with its port moved up for the `n`th search shard in one
/// process (by `n` × [`SHARD_PORT_STEP`]); port 0 stays 0.
fn nth_port(listen: &str, n: usize) -> anyhow::Result<String> {
    if n == 0 {
        return Ok(listen.to_owned());
    }
    let mut addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("SEARCH_GRPC_ADDR {listen:?}: an IP address and port"))?;
    if addr.port() != 0 {
        let step = usize::from(SHARD_PORT_STEP);
        let port = u16::try_from(usize::from(addr.port()) + n * step)
            .with_context(|| format!("SEARCH_GRPC_ADDR {listen:?}: no port for shard {n}"))?;
        addr.set_port(port);
    }
    Ok(addr.to_string())
}

/// Serves `GET /metrics` (Prometheus' text format) on `listener` until
/// `shutdown`: every service's metrics, for a process without the gateway
/// (whose `/metrics` serves the same).
async fn serve_metrics(
    listener: TcpListener,
    handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: CancellationToken,
) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.map(|h| h.render()).unwrap_or_default() }
        }),
    );
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %err, "the metrics listener failed");
    }
}

/// Runs every migration of the services given (the schema each owns).
pub async fn migrate(env: &Env, services: &[Service]) -> anyhow::Result<()> {
    let database = pai_common::config::DatabaseSettings::from_env(env)?;
    pai_common::db::ensure_database(&database.url).await?;
    let pool = pai_common::db::pool(&database)?;
    for service in services {
        let (schema, migrator) = match service {
            Service::Auth => (pai_auth::SCHEMA, &pai_auth::MIGRATOR),
            Service::Search => (pai_search::SCHEMA, &pai_search::MIGRATOR),
            Service::Documents => (pai_documents::SCHEMA, &pai_documents::MIGRATOR),
            Service::Inference => (pai_inference::SCHEMA, &pai_inference::MIGRATOR),
            Service::MailSync => (pai_mail_sync::SCHEMA, &pai_mail_sync::MIGRATOR),
            Service::Gateway => continue,
        };
        pai_common::db::migrate(&pool, schema, migrator).await?;
        tracing::info!(schema, "migrations applied");
    }
    pool.close().await;
    Ok(())
}

impl Stack {
    /// Validates every setting, binds every listener, then starts the
    /// services. Nothing binds when a setting is wrong. Services started
    /// together reach each other where they really listen.
    pub async fn start(env: &Env, services: &[Service]) -> anyhow::Result<Self> {
        let wants = |service| services.contains(&service);
        let auth = wants(Service::Auth)
            .then(|| AuthSettings::from_env(env))
            .transpose()?;
        let mut inference = wants(Service::Inference)
            .then(|| {
                Ok::<_, pai_common::ConfigError>((
                    InferenceSettings::from_env(env)?,
                    AskSettings::from_env(env)?,
                ))
            })
            .transpose()?;
        let mut search = wants(Service::Search)
            .then(|| SearchSettings::from_env(env))
            .transpose()?;
        let mut documents = wants(Service::Documents)
            .then(|| DocumentsSettings::from_env(env))
            .transpose()?;
        let mut mail = wants(Service::MailSync)
            .then(|| MailSettings::from_env(env))
            .transpose()?;
        let mut gateway = wants(Service::Gateway)
            .then(|| GatewaySettings::from_env(env))
            .transpose()?;
        let addrs = pai_common::config::ServiceAddrs::from_env(env)?;

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        let local = LocalServers::new(addrs.in_process_calls);
        let mut stack = Self {
            gateway_addr: None,
            auth_addr: None,
            search_addr: None,
            documents_addr: None,
            inference_addr: None,
            mail_addr: None,
            tasks: JoinSet::new(),
            names: HashMap::new(),
            shutdown: shutdown.clone(),
        };

        // Auth binds first: documents and search follow its revocation feed.
        let auth_listener = match auth {
            Some(_) => {
                let (listener, addr) = bind(&addrs.auth_listen, "AUTH_GRPC_ADDR").await?;
                let url = format!("http://{addr}");
                if let Some(documents) = documents.as_mut() {
                    documents.auth_url.clone_from(&url);
                }
                if let Some(search) = search.as_mut() {
                    search.auth_url.clone_from(&url);
                }
                if let Some((_, ask)) = inference.as_mut() {
                    ask.auth_url.clone_from(&url);
                }
                if let Some(mail) = mail.as_mut() {
                    mail.auth_url.clone_from(&url);
                }
                if let Some(gateway) = gateway.as_mut() {
                    gateway.services.auth_url = url;
                }
                stack.auth_addr = Some(addr);
                Some(listener)
            }
            None => None,
        };
        let inference_listener = match &inference {
            Some(_) => {
                let (listener, addr) = bind(&addrs.inference_listen, "INFERENCE_GRPC_ADDR").await?;
                if let Some(search) = search.as_mut() {
                    search.inference_url = format!("http://{addr}");
                }
                if let Some(gateway) = gateway.as_mut() {
                    gateway.services.inference_url = format!("http://{addr}");
                }
                stack.inference_addr = Some(addr);
                Some(listener)
            }
            None => None,
        };
        if let Some(settings) = search {
            // Every shard in this process when SEARCH_SHARDS asks for
            // several and SEARCH_SHARD names none; callers here then reach
            // them where they listen.
            let all_here = settings.shard.count > 1 && env.get("SEARCH_SHARD").is_none();
            let shards: Vec<Shard> = if all_here {
                (0..settings.shard.count)
                    .map(|index| Shard {
                        index,
                        count: settings.shard.count,
                    })
                    .collect()
            } else {
                vec![settings.shard]
            };
            let mut bound = Vec::with_capacity(shards.len());
            for (n, shard) in shards.into_iter().enumerate() {
                let listen = nth_port(&addrs.search_listen, n)?;
                let (listener, addr) = bind(&listen, "SEARCH_GRPC_ADDR").await?;
                bound.push((shard, listener, addr));
            }
            let urls = ShardUrls::new(
                bound
                    .iter()
                    .map(|(_, _, addr)| format!("http://{addr}"))
                    .collect(),
            )
            .context("no search shard")?;
            if all_here || settings.shard == Shard::ONLY {
                if let Some(documents) = documents.as_mut() {
                    documents.search_url = urls.clone();
                }
                if let Some(gateway) = gateway.as_mut() {
                    gateway.services.search_url = urls.clone();
                }
                if let Some((_, ask)) = inference.as_mut() {
                    ask.search_url = urls.clone();
                }
                if let Some(mail) = mail.as_mut() {
                    mail.search_url = urls.clone();
                }
            }
            stack.search_addr = bound.first().map(|(_, _, addr)| *addr);
            for (shard, listener, _) in bound {
                let mut settings = settings.clone();
                if all_here {
                    settings.vector_db_path = settings
                        .vector_db_path
                        .join(format!("shard-{}", shard.index));
                }
                if all_here || settings.shard == Shard::ONLY {
                    settings.shards = urls.clone();
                }
                settings.shard = shard;
                let pool = pai_common::db::pool(&settings.database)?;
                let (token, local) = (shutdown.clone(), local.clone());
                let id = tasks
                    .spawn(async move {
                        let result =
                            pai_search::serve(settings, pool, listener, token, local).await;
                        (Service::Search, result)
                    })
                    .id();
                names.insert(id, Service::Search);
            }
        }
        if let (Some((settings, ask)), Some(listener)) = (inference, inference_listener) {
            let pool = pai_common::db::pool(&ask.database)?;
            let ask = pai_inference::AskService {
                settings: ask,
                pool,
            };
            let (token, local) = (shutdown.clone(), local.clone());
            let id = tasks
                .spawn(async move {
                    let result =
                        pai_inference::serve(settings, Some(ask), listener, token, local).await;
                    (Service::Inference, result)
                })
                .id();
            names.insert(id, Service::Inference);
        }
        if let Some(settings) = documents {
            let (listener, addr) = bind(&addrs.documents_listen, "DOCUMENTS_GRPC_ADDR").await?;
            if let Some(gateway) = gateway.as_mut() {
                gateway.services.documents_url = format!("http://{addr}");
            }
            stack.documents_addr = Some(addr);
            let pool = pai_common::db::pool(&settings.database)?;
            let (token, local) = (shutdown.clone(), local.clone());
            let id = tasks
                .spawn(async move {
                    let result = pai_documents::serve(settings, pool, listener, token, local).await;
                    (Service::Documents, result)
                })
                .id();
            names.insert(id, Service::Documents);
        }
        if let Some(settings) = mail {
            let (listener, addr) = bind(&addrs.mail_listen, "MAIL_SYNC_GRPC_ADDR").await?;
            if let Some(gateway) = gateway.as_mut() {
                gateway.services.mail_url = format!("http://{addr}");
            }
            stack.mail_addr = Some(addr);
            let pool = pai_common::db::pool(&settings.database)?;
            let (token, local) = (shutdown.clone(), local.clone());
            let id = tasks
                .spawn(async move {
                    let result = pai_mail_sync::serve(settings, pool, listener, token, local).await;
                    (Service::MailSync, result)
                })
                .id();
            names.insert(id, Service::MailSync);
        }
        if let (Some(settings), Some(listener)) = (auth, auth_listener) {
            let pool = pai_common::db::pool(&settings.database)?;
            let (token, local) = (shutdown.clone(), local.clone());
            let id = tasks
                .spawn(async move {
                    let result = pai_auth::serve(settings, pool, listener, token, local).await;
                    (Service::Auth, result)
                })
                .id();
            names.insert(id, Service::Auth);
        }
        if let Some(settings) = gateway {
            let (listener, addr) = bind(&settings.bind_addr(), "HOST:PORT").await?;
            stack.gateway_addr = Some(addr);
            let token = shutdown.clone();
            let id = tasks
                .spawn(async move {
                    let result = pai_gateway::serve(settings, listener, token, local).await;
                    (Service::Gateway, result)
                })
                .id();
            names.insert(id, Service::Gateway);
        }
        if let Some(listen) = env.get("METRICS_ADDR") {
            let (listener, _) = bind(listen, "METRICS_ADDR").await?;
            // Installed before the services record anything.
            let handle = pai_common::telemetry::prometheus();
            tokio::spawn(serve_metrics(listener, handle, shutdown.clone()));
        }
        stack.tasks = tasks;
        stack.names = names;
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
            record(joined, &mut first_error);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Kills every service at once, as a crash would: nothing in flight is
    /// finished or acknowledged.
    pub async fn abort(mut self) {
        self.shutdown.cancel();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops every service and waits for them, at most [`GRACE_PERIOD`].
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_within(GRACE_PERIOD).await
    }

    /// Stops every service and waits for them, at most `grace`; a service
    /// still running then is aborted and named in the error.
    pub async fn stop_within(mut self, grace: Duration) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let mut first_error = None;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    let id = match &joined {
                        Ok((id, _)) => *id,
                        Err(err) => err.id(),
                    };
                    self.names.remove(&id);
                    record(joined.map(|(_, output)| output), &mut first_error);
                }
                Ok(None) => return first_error.map_or(Ok(()), Err),
                Err(_) => {
                    self.tasks.abort_all();
                    let mut running: Vec<&str> = self.names.values().map(|s| s.name()).collect();
                    running.sort_unstable();
                    anyhow::bail!("{} still running after {grace:?}", running.join(", "));
                }
            }
        }
    }
}

/// Logs how one service's task ended and keeps the first error.
fn record(
    joined: Result<(Service, anyhow::Result<()>), tokio::task::JoinError>,
    first_error: &mut Option<anyhow::Error>,
) {
    match joined {
        Ok((service, Err(err))) => {
            tracing::error!(service = service.name(), error = %format!("{err:#}"), "service failed");
            first_error.get_or_insert(err);
        }
        Ok((service, Ok(()))) => tracing::info!(service = service.name(), "service stopped"),
        Err(err) => {
            first_error.get_or_insert_with(|| anyhow::anyhow!("service task: {err}"));
        }
    }
}
