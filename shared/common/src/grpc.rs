//! gRPC plumbing shared by servers and clients.
//!
//! Nagle's algorithm is turned off on both ends: with it, each unary call on
//! loopback took ~44 ms instead of ~0.15 ms (FINDINGS).
//!
//! Services started in one process (`pai run`) also reach each other in
//! process: [`LocalServers`] hands a client the server's own routes instead
//! of a connection, so a call is still a gRPC request (the same protobuf
//! codecs, metadata, interceptors and status codes) without HTTP/2 framing
//! and two trips through the kernel's loopback.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

/// What a gRPC client sends its requests through: a connection, or the
/// routes of a server running in this process.
pub type GrpcChannel = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, ChannelError>;

/// A [`GrpcChannel`] that could not carry a call (a named type: generated
/// clients in async handlers do not accept a bare boxed error).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ChannelError(BoxError);

/// gRPC servers running in this process, by the URL clients would dial.
///
/// A server registers its routes when it starts serving; a channel made
/// before that (services start in any order) uses them from then on, and the
/// connection to the URL until then.
#[derive(Clone)]
pub struct LocalServers {
    servers: Arc<Mutex<HashMap<String, Arc<OnceLock<Routes>>>>>,
    enabled: bool,
}

impl Default for LocalServers {
    fn default() -> Self {
        Self::new(true)
    }
}

impl LocalServers {
    /// A registry; when not `enabled`, every channel goes over the network.
    pub fn new(enabled: bool) -> Self {
        Self {
            servers: Arc::default(),
            enabled,
        }
    }

    fn slot(&self, url: &str) -> Arc<OnceLock<Routes>> {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(servers.entry(url.to_owned()).or_default())
    }

    /// Makes `routes` answer the calls to `url` made through [`Self::channel`].
    pub fn register(&self, url: &str, routes: Routes) {
        if !self.enabled {
            return;
        }
        if self.slot(url).set(routes).is_err() {
            tracing::warn!(
                url,
                "a server is already registered at this URL; keeping it"
            );
        }
    }

    /// A channel to `url`: in process once a server registered it, else a
    /// lazily connecting connection.
    pub fn channel(&self, url: &str) -> Result<GrpcChannel, tonic::transport::Error> {
        Ok(BoxCloneSyncService::new(LocalFirst {
            local: self.slot(url),
            remote: channel(url)?,
        }))
    }
}

/// Serves the routes of the service `name` on `listener` until `shutdown`
/// is cancelled, and to the services of this process through `local`,
/// under the URL they dial for the listener's address.
pub async fn serve(
    name: &str,
    routes: Routes,
    listener: TcpListener,
    local: &LocalServers,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let routes = routes.prepare();
    local.register(&format!("http://{addr}"), routes.clone());
    tracing::info!(%addr, "{name} service listening");
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .with_context(|| format!("{name} gRPC server"))
}

#[derive(Clone)]
struct LocalFirst {
    local: Arc<OnceLock<Routes>>,
    remote: Channel,
}

impl tower::Service<http::Request<Body>> for LocalFirst {
    type Response = http::Response<Body>;
    type Error = ChannelError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ChannelError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ChannelError>> {
        if self.local.get().is_some() {
            // A server's routes are always ready.
            return Poll::Ready(Ok(()));
        }
        self.remote
            .poll_ready(cx)
            .map_err(|e| ChannelError(e.into()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.local.get() {
            Some(routes) => {
                let call = routes.clone().oneshot(request);
                Box::pin(async move { call.await.map_err(|e| ChannelError(e.into())) })
            }
            None => {
                let call = self.remote.call(request);
                Box::pin(async move { call.await.map_err(|e| ChannelError(e.into())) })
            }
        }
    }
}

/// Binds a listener; port 0 picks a free one (tests).
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accepted connections with `TCP_NODELAY` set.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A lazily connecting channel to `url` with `TCP_NODELAY` set.
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3))
        .connect_lazy())
}
