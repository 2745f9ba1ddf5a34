//! gRPC plumbing shared by servers and clients.
//!
//! Nagle's algorithm is turned off on both ends: with it, each unary call on
//! loopback took ~44 ms instead of ~0.15 ms (measured on this project's
//! 2-core machine).
//!
//! Services started in one process (`pai run`) also reach each other in
//! process: [`LocalServers`] hands a client the server's own routes instead
//! of a connection, so a call is still a gRPC request (the same protobuf
//! codecs, metadata, interceptors and status codes) without HTTP/2 framing
//! and two trips through the kernel's loopback.
//!
//! Every call has a deadline: the one its caller set
//! (`tonic::Request::set_timeout`), else its channel's ([`DEFAULT_DEADLINE`]
//! unless the channel was made with another). It travels as the
//! `grpc-timeout` header, so a server stops the work its caller gave up on,
//! and the caller gets `DEADLINE_EXCEEDED` when it passes, in process or not.

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
use tracing::Instrument;

/// The deadline of a call whose caller and channel chose none: the longest
/// call pai makes (indexing a large document's chunks) fits in it; callers
/// that answer people choose shorter ones.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

const GRPC_TIMEOUT: &str = "grpc-timeout";

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
    /// lazily connecting connection. Calls without a deadline of their own
    /// get [`DEFAULT_DEADLINE`].
    pub fn channel(&self, url: &str) -> Result<GrpcChannel, tonic::transport::Error> {
        self.channel_with_deadline(url, DEFAULT_DEADLINE)
    }

    /// [`Self::channel`] whose calls without a deadline of their own get
    /// `deadline`.
    pub fn channel_with_deadline(
        &self,
        url: &str,
        deadline: Duration,
    ) -> Result<GrpcChannel, tonic::transport::Error> {
        Ok(BoxCloneSyncService::new(LocalFirst {
            local: self.slot(url),
            remote: endpoint(url)?.connect_lazy(),
            deadline,
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
        .trace_fn(crate::trace_context::server_span)
        .layer(tower::layer::layer_fn(Recorded))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .with_context(|| format!("{name} gRPC server"))
}

/// A server's routes, counting each call they answer and timing it
/// ([`crate::telemetry::GRPC_REQUESTS`]); the method of a call they do not
/// serve counts as `other`, so that no caller can add series.
#[derive(Clone)]
pub struct Recorded<S>(pub S);

impl<S, B, R> tower::Service<http::Request<B>> for Recorded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = std::time::Instant::now();
        let call = self.0.call(request);
        Box::pin(async move {
            let response = call.await?;
            // A failed call answers with its status in the headers; one
            // that succeeds, in the trailers.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            let unimplemented = code == (tonic::Code::Unimplemented as i32).to_string();
            let method = if unimplemented {
                "other".to_owned()
            } else {
                method
            };
            let labels = [("method", method), ("code", code)];
            metrics::counter!(crate::telemetry::GRPC_REQUESTS, &labels).increment(1);
            metrics::histogram!(crate::telemetry::GRPC_REQUEST_SECONDS, &labels)
                .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

#[derive(Clone)]
struct LocalFirst {
    local: Arc<OnceLock<Routes>>,
    remote: Channel,
    /// For calls that carry no `grpc-timeout` of their own.
    deadline: Duration,
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

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        crate::trace_context::inject(request.headers_mut());
        let deadline = match request.headers().get(GRPC_TIMEOUT) {
            Some(value) => parse_grpc_timeout(value.as_bytes()).unwrap_or(self.deadline),
            None => {
                request.headers_mut().insert(
                    GRPC_TIMEOUT,
                    http::HeaderValue::from_str(&format_grpc_timeout(self.deadline))
                        .unwrap_or(http::HeaderValue::from_static("600S")),
                );
                self.deadline
            }
        };
        let call: Pin<Box<dyn Future<Output = Result<_, ChannelError>> + Send>> =
            match self.local.get() {
                Some(routes) => {
                    // The server's span, as its listener would open it.
                    let span = crate::trace_context::server_span(&request);
                    let call = Recorded(routes.clone()).oneshot(request).instrument(span);
                    Box::pin(async move { call.await.map_err(|e| ChannelError(e.into())) })
                }
                None => {
                    let call = self.remote.call(request);
                    Box::pin(async move { call.await.map_err(|e| ChannelError(e.into())) })
                }
            };
        Box::pin(async move {
            match tokio::time::timeout(deadline, call).await {
                Ok(response) => response,
                // Dropping the call cancels it: in process the handler's
                // future, over the network the HTTP/2 stream.
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within the call's deadline ({deadline:?})"
                ))
                .into_http()),
            }
        })
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit.
fn format_grpc_timeout(deadline: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let millis = deadline.as_millis();
    if millis <= MAX {
        format!("{millis}m")
    } else {
        format!("{}S", u128::from(deadline.as_secs()).min(MAX))
    }
}

/// Reads a `grpc-timeout` value (gRPC over HTTP/2: 1 to 8 digits, then
/// H, M, S, m, u or n).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
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

fn endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3)))
}

/// A lazily connecting channel to `url` with `TCP_NODELAY` set; a call
/// gets at most [`DEFAULT_DEADLINE`], or its own `grpc-timeout` if shorter.
pub fn channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    channel_with_deadline(url, DEFAULT_DEADLINE)
}

/// [`channel`] whose calls get at most `deadline`, or their own
/// `grpc-timeout` if shorter.
pub fn channel_with_deadline(
    url: &str,
    deadline: Duration,
) -> Result<Channel, tonic::transport::Error> {
    Ok(endpoint(url)?.timeout(deadline).connect_lazy())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Instant;

    use pai_proto::v1::search_internal_client::SearchInternalClient;
    use pai_proto::v1::{DeleteUserRequest, RebuildRequest};
    use tonic::Code;

    use super::*;

    /// `SearchInternal` as a server that never answers `Rebuild` and
    /// refuses `DeleteUser` with the `grpc-timeout` it received.
    #[derive(Clone)]
    struct Stuck;

    impl tonic::server::NamedService for Stuck {
        const NAME: &'static str = "pai.v1.SearchInternal";
    }

    impl tower::Service<http::Request<Body>> for Stuck {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let timeout = request
                .headers()
                .get(GRPC_TIMEOUT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            let stuck = request.uri().path().ends_with("/Rebuild");
            Box::pin(async move {
                if stuck {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                Ok(tonic::Status::failed_precondition(timeout).into_http())
            })
        }
    }

    /// Fails instead of hanging when a deadline is not kept.
    async fn within<T>(call: impl Future<Output = T>) -> (T, Duration) {
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the call outlived its deadline");
        (result, started.elapsed())
    }

    #[tokio::test]
    async fn an_in_process_call_ends_at_its_deadline() {
        let local = LocalServers::default();
        let url = "http://stuck.invalid:1";
        local.register(url, Routes::new(Stuck));

        let channel = local
            .channel_with_deadline(url, Duration::from_millis(200))
            .unwrap();
        let mut client = SearchInternalClient::new(channel);
        let (result, took) = within(client.rebuild(RebuildRequest {})).await;
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(took >= Duration::from_millis(200), "{took:?}");

        // The server is told the deadline.
        let status = client
            .delete_user(DeleteUserRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.message(), "200m");

        // A call's own deadline wins over the channel's.
        let mut client = SearchInternalClient::new(local.channel(url).unwrap());
        let mut request = tonic::Request::new(RebuildRequest {});
        request.set_timeout(Duration::from_millis(100));
        let (result, _) = within(client.rebuild(request)).await;
        assert_eq!(result.unwrap_err().code(), Code::DeadlineExceeded);
        let status = client
            .delete_user(DeleteUserRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.message(), "600000m");
    }

    #[tokio::test]
    async fn a_call_over_the_network_ends_at_its_deadline() {
        let local = LocalServers::new(false);
        let (listener, addr) = bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let (local, shutdown) = (local.clone(), shutdown.clone());
            async move { serve("stuck", Routes::new(Stuck), listener, &local, shutdown).await }
        });
        let url = format!("http://{addr}");

        let channel = local
            .channel_with_deadline(&url, Duration::from_millis(200))
            .unwrap();
        let (result, _) =
            within(SearchInternalClient::new(channel).rebuild(RebuildRequest {})).await;
        // The server keeps the same deadline: whichever end notices first
        // ends the call (tonic's server answers CANCELLED).
        let status = result.unwrap_err();
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );

        let channel = channel_with_deadline(&url, Duration::from_millis(200)).unwrap();
        let (result, _) =
            within(SearchInternalClient::new(channel).rebuild(RebuildRequest {})).await;
        assert!(result.is_err());

        shutdown.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn grpc_timeouts_round_trip() {
        for deadline in [
            Duration::from_millis(1),
            Duration::from_secs(30),
            Duration::from_secs(600),
        ] {
            let text = format_grpc_timeout(deadline);
            assert_eq!(
                parse_grpc_timeout(text.as_bytes()),
                Some(deadline),
                "{text}"
            );
        }
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(1 << 40)),
            "99999999S"
        );
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
