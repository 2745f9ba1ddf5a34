//! What every handler shares.

use std::sync::Arc;

use pai_common::JwtKeys;
use pai_common::grpc::GrpcChannel;
use pai_common::identity::ServiceCredential;
use pai_common::revocation::{FeedClient, RevocationSet};
use pai_proto::v1::account_service_client::AccountServiceClient;
use pai_proto::v1::admin_service_client::AdminServiceClient;
use pai_proto::v1::ask_service_client::AskServiceClient;
use pai_proto::v1::auth_service_client::AuthServiceClient;
use pai_proto::v1::document_service_client::DocumentServiceClient;
use pai_proto::v1::mail_connect_client::MailConnectClient;
use pai_proto::v1::mail_service_client::MailServiceClient;
use pai_proto::v1::search_service_client::SearchServiceClient;
use tonic::Request;
use tonic::service::interceptor::InterceptedService;

use crate::cookies::CookieSettings;
use crate::ratelimit::Limits;
use crate::readiness::Readiness;

/// Cheap to clone: handlers and extractors take it on every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub keys: Arc<JwtKeys>,
    pub revocations: Arc<RevocationSet>,
    pub limits: Limits,
    pub cookies: CookieSettings,
    /// Public auth calls carry the gateway's service credential, so that
    /// auth takes the client address in them from the gateway alone.
    pub auth: AuthServiceClient<InterceptedService<GrpcChannel, ServiceCredential>>,
    pub account: RoundRobin<AccountServiceClient<GrpcChannel>>,
    pub admin: AdminServiceClient<GrpcChannel>,
    pub documents: DocumentServiceClient<GrpcChannel>,
    /// A client per search shard.
    pub search: pai_common::shards::Shards<SearchServiceClient<GrpcChannel>>,
    /// Questions: calls get `ASK_TIMEOUT_SECS` as deadline.
    pub ask: AskServiceClient<GrpcChannel>,
    /// The query history: calls get the request's time limit.
    pub queries: AskServiceClient<GrpcChannel>,
    /// The caller's mail (user-scoped calls).
    pub mail: MailServiceClient<GrpcChannel>,
    /// Google's connect redirect: carries the gateway's service credential.
    pub mail_connect: MailConnectClient<InterceptedService<GrpcChannel, ServiceCredential>>,
    /// The auth service's revocation feed.
    pub feed: FeedClient,
    pub readiness: Arc<Readiness>,
}

impl Shared {
    /// Reads the revocation feed now, so that this gateway refuses a
    /// session it just revoked before it answers (other gateways follow
    /// within the poll interval).
    pub async fn sync_revocations(&self) {
        if let Err(status) = self.revocations.poll_once(&mut self.feed.clone()).await {
            tracing::warn!(message = status.message(), "revocation feed unavailable");
        }
    }
}

/// Wraps a message in a request carrying the caller's bearer token, which
/// the service verifies again.
pub fn authorized<T>(token: &str, message: T) -> Request<T> {
    pai_common::identity::with_bearer(Request::new(message), token)
}

/// Several clients over separate HTTP/2 connections, used in turn: one
/// connection serialises every call on one task, the bottleneck under load.
pub struct RoundRobin<T> {
    clients: Vec<T>,
    next: std::sync::atomic::AtomicUsize,
}

impl<T: Clone> RoundRobin<T> {
    /// `clients` must not be empty.
    pub fn new(clients: Vec<T>) -> Self {
        Self {
            clients,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn next(&self) -> T {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.clients[i % self.clients.len()].clone()
    }
}
