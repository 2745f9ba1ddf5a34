//! pai's REST/JSON gateway: verifies access tokens, applies rate limits and
//! CORS, forwards each call over gRPC with the caller's token, and answers
//! errors as RFC 9457 problem+json.

mod cookies;
mod dto;
mod extract;
mod metrics;
mod openapi;
mod problem;
mod ratelimit;
mod readiness;
mod routes;
mod state;
mod timeout;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use pai_common::config::{AmqpSettings, DatabaseSettings, Env, JwtSettings, ServiceAddrs};
use pai_common::grpc::LocalServers;
use pai_common::identity::ServiceCredential;
use pai_common::revocation::RevocationSet;
use pai_common::{ConfigError, ErrorCode, JwtKeys};
use pai_proto::v1::account_service_client::AccountServiceClient;
use pai_proto::v1::admin_service_client::AdminServiceClient;
use pai_proto::v1::ask_service_client::AskServiceClient;
use pai_proto::v1::auth_internal_client::AuthInternalClient;
use pai_proto::v1::auth_service_client::AuthServiceClient;
use pai_proto::v1::document_service_client::DocumentServiceClient;
use pai_proto::v1::mail_connect_client::MailConnectClient;
use pai_proto::v1::mail_service_client::MailServiceClient;
use pai_proto::v1::search_service_client::SearchServiceClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use crate::openapi::ApiDoc;
use crate::problem::Problem;
use crate::ratelimit::Limits;
use crate::readiness::Readiness;
use crate::state::AppState;
use crate::timeout::Timeouts;

/// HTTP/2 connections from the gateway to auth for user-scoped calls.
const AUTH_CONNECTIONS: usize = 4;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long a read of the revocation feed may take.
const FEED_DEADLINE: Duration = Duration::from_secs(5);

/// The largest message the gateway reads from the inference service: a
/// page of 100 queries, each with up to 20 passages, exceeds tonic's 4 MiB.
const MAX_QUERIES_MESSAGE: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub host: String,
    pub port: u16,
    pub allowed_origins: Vec<HeaderValue>,
    pub rate_limit_rps: u32,
    pub rate_limit_burst: u32,
    pub max_body_bytes: usize,
    pub max_file_size: u64,
    /// The longest a request may take before it is answered 504; also the
    /// deadline of the gRPC calls made for it.
    pub request_timeout: Duration,
    /// The same for an upload.
    pub upload_timeout: Duration,
    /// The same for a question (`POST /api/queries`), answered whole or
    /// streamed: the limit runs until the answer begins, and bounds the
    /// call to the inference service.
    pub ask_timeout: Duration,
    /// `Secure` on the cookie mode's cookies (`COOKIE_SECURE`, default
    /// false; set it when clients reach pai over TLS).
    pub cookie_secure: bool,
    /// The Max-Age of a refresh cookie: the auth service's
    /// `REFRESH_TOKEN_LIFETIME_DAYS` (default 30).
    pub refresh_lifetime: Duration,
    /// The web app's static export, served at `/` (`WEB_DIR`, default
    /// `frontend/out`; without an `index.html` there, `/` answers 404).
    pub web_dir: PathBuf,
    pub jwt: JwtSettings,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub services: ServiceAddrs,
}

impl GatewaySettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let origins = env.string("ALLOWED_ORIGINS", "http://localhost:8000");
        let allowed_origins = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| {
                    ConfigError::new("ALLOWED_ORIGINS", format!("invalid origin {o:?}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            host: env.string("HOST", "localhost"),
            port: env.parse("PORT", 8000u16)?,
            allowed_origins,
            rate_limit_rps: env.parse("RATE_LIMIT_RPS", 20u32)?,
            rate_limit_burst: env.parse("RATE_LIMIT_BURST", 40u32)?,
            max_body_bytes: env.parse("MAX_REQUEST_BODY_BYTES", 64 * 1024usize)?,
            max_file_size: env.parse("MAX_FILE_SIZE", 10 * 1024 * 1024u64)?,
            request_timeout: seconds(env, "REQUEST_TIMEOUT_SECS", 30)?,
            upload_timeout: seconds(env, "UPLOAD_TIMEOUT_SECS", 300)?,
            ask_timeout: seconds(env, "ASK_TIMEOUT_SECS", 300)?,
            cookie_secure: env.parse("COOKIE_SECURE", false)?,
            refresh_lifetime: Duration::from_secs(
                env.parse("REFRESH_TOKEN_LIFETIME_DAYS", 30u64)?
                    .saturating_mul(24 * 3600),
            ),
            web_dir: PathBuf::from(env.string("WEB_DIR", "frontend/out")),
            jwt: JwtSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
            amqp: AmqpSettings::from_env(env)?,
            services: ServiceAddrs::from_env(env)?,
        })
    }

    pub fn bind_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A duration of at least one second, named in seconds.
fn seconds(env: &Env, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
    match env.parse(name, default)? {
        0 => Err(ConfigError::new(name, "must be at least 1 (seconds)")),
        secs => Ok(Duration::from_secs(secs)),
    }
}

/// Builds the router and the background task that follows revocations.
/// Requests go to co-located services in process (`local`), to the others
/// over their URLs; readiness and the revocation feed always use the URLs.
fn build(
    settings: &GatewaySettings,
    pool: sqlx::PgPool,
    local: &LocalServers,
) -> anyhow::Result<(Router, AppState)> {
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    let auth_url = &settings.services.auth_url;
    // A call made for a request has the request's time limit as deadline
    // (an upload's for the documents service, which takes them).
    let deadline = settings.request_timeout;
    let auth_calls = local
        .channel_with_deadline(auth_url, deadline)
        .with_context(|| format!("AUTH_URL {auth_url:?}"))?;
    // Readiness and the revocation feed go over the network.
    let over_network = |name: &str, url: &str, deadline| {
        pai_common::grpc::channel_with_deadline(url, deadline)
            .with_context(|| format!("{name} {url:?}"))
    };
    let feed_channel = over_network("AUTH_URL", auth_url, FEED_DEADLINE)?;
    let check = readiness::CHECK_TIMEOUT;
    let auth_channel = over_network("AUTH_URL", auth_url, check)?;
    let documents_channel = over_network("DOCUMENTS_URL", &settings.services.documents_url, check)?;
    let search_channels = settings
        .services
        .search_url
        .connect(|url| over_network("SEARCH_URL", url, check))?;
    let state = AppState::new(state::Shared {
        keys: Arc::clone(&keys),
        revocations: Arc::new(RevocationSet::default()),
        limits: Limits::new(settings.rate_limit_rps, settings.rate_limit_burst),
        cookies: cookies::CookieSettings {
            secure: settings.cookie_secure,
            refresh_lifetime: settings.refresh_lifetime,
        },
        auth: AuthServiceClient::with_interceptor(
            auth_calls.clone(),
            ServiceCredential::new(Arc::clone(&keys), "gateway"),
        ),
        account: state::RoundRobin::new(
            (0..AUTH_CONNECTIONS)
                .map(|_| {
                    local
                        .channel_with_deadline(auth_url, deadline)
                        .map(AccountServiceClient::new)
                })
                .collect::<Result<_, _>>()?,
        ),
        admin: AdminServiceClient::new(auth_calls),
        documents: DocumentServiceClient::new(local.channel_with_deadline(
            &settings.services.documents_url,
            settings.upload_timeout.max(deadline),
        )?)
        .max_encoding_message_size(4 * 1024 * 1024),
        search: settings.services.search_url.connect(|url| {
            local
                .channel_with_deadline(url, deadline)
                .map(SearchServiceClient::new)
        })?,
        ask: AskServiceClient::new(
            local.channel_with_deadline(&settings.services.inference_url, settings.ask_timeout)?,
        )
        .max_decoding_message_size(MAX_QUERIES_MESSAGE),
        queries: AskServiceClient::new(
            local.channel_with_deadline(&settings.services.inference_url, deadline)?,
        )
        .max_decoding_message_size(MAX_QUERIES_MESSAGE),
        mail: MailServiceClient::new(
            local.channel_with_deadline(&settings.services.mail_url, deadline)?,
        ),
        mail_connect: MailConnectClient::with_interceptor(
            local.channel_with_deadline(&settings.services.mail_url, deadline)?,
            ServiceCredential::new(Arc::clone(&keys), "gateway"),
        ),
        feed: AuthInternalClient::with_interceptor(
            feed_channel,
            ServiceCredential::new(Arc::clone(&keys), "gateway"),
        ),
        readiness: Arc::new(Readiness::new(
            pool,
            settings.amqp.url.clone(),
            [("auth", auth_channel), ("documents", documents_channel)]
                .into_iter()
                // Every search shard.
                .chain(search_channels.all().iter().map(|c| ("search", c.clone())))
                .collect(),
        )),
    });
    Ok((router(settings, state.clone()), state))
}

fn router(settings: &GatewaySettings, state: AppState) -> Router {
    use routes::{admin, auth, browser, documents, mail, ops, queries, search, users};

    // Uploads stream through; the documents service enforces MAX_FILE_SIZE
    // exactly, this only stops a body far beyond it.
    let uploads = Router::new()
        .route("/documents", post(documents::upload).get(documents::list))
        .layer(DefaultBodyLimit::max(
            usize::try_from(settings.max_file_size)
                .unwrap_or(usize::MAX)
                .saturating_add(1 << 20),
        ));

    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/accounts", get(browser::accounts))
        .route("/auth/switch", post(browser::switch))
        .route("/auth/sessions", get(auth::sessions))
        .route("/auth/sessions/all", delete(auth::revoke_all_sessions))
        .route("/auth/sessions/{id}", delete(auth::revoke_session))
        .route("/auth/validate", get(auth::validate))
        .route(
            "/users/profile",
            get(users::profile).put(users::update_profile),
        )
        .route("/users/change-password", post(users::change_password))
        .route("/users/account", delete(users::delete_account))
        .route("/users/account-status", get(users::account_status))
        .route("/users/deactivate", post(users::deactivate))
        .route("/users/reactivate", post(users::reactivate))
        .route("/admin/users", get(admin::list_users))
        .route("/admin/users/{id}/deactivate", post(admin::deactivate_user))
        .route("/admin/users/{id}/reactivate", post(admin::reactivate_user))
        .route(
            "/documents/{id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/documents/{id}/file", get(documents::download))
        .route("/documents/{id}/reprocess", post(documents::reprocess))
        .route("/search", get(search::search))
        .route("/queries", post(queries::ask).get(queries::list))
        .route("/queries/{id}", get(queries::get).delete(queries::delete))
        .route("/gmail/connect", get(mail::connect))
        .route("/gmail/callback", get(mail::callback))
        .route("/mail/accounts", get(mail::accounts))
        .route("/mail/accounts/{id}", delete(mail::remove))
        .route("/mail/accounts/{id}/sync", post(mail::sync))
        .route("/emails", get(mail::list))
        .route("/emails/threads/{id}", get(mail::thread))
        .route("/emails/{id}", get(mail::get))
        .route("/openapi.json", get(ops::openapi_json))
        .merge(uploads)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::per_ip,
        ));

    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(settings.allowed_origins.clone()))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(cookies::MODE_HEADER),
            HeaderName::from_static(cookies::CSRF_HEADER),
        ])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));

    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let span = tracing::info_span!(
                "http",
                method = %request.method(),
                path = %request.uri().path(),
                request_id,
                otel.name = %format!("{} {}", request.method(), request.uri().path()),
                otel.kind = "server",
            );
            // Under the browser's trace, if it sent one.
            pai_common::trace_context::continue_trace(&span, request.headers());
            span
        })
        .on_failure(log_failure);

    let app = Router::new()
        .nest("/api", api.fallback(ops::not_found))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics_text))
        .route("/docs", get(ops::docs));
    let app = match web::router(&settings.web_dir) {
        Some(web) => app.fallback_service(web),
        None => {
            tracing::warn!(
                dir = %settings.web_dir.display(),
                "WEB_DIR holds no built web app (index.html): `/` answers 404; `make web` builds it"
            );
            app.fallback(ops::not_found)
        }
    };
    app.method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(extract::no_nul_in_query))
        .layer(axum::middleware::from_fn(problem::every_error_is_a_problem))
        .layer(axum::middleware::from_fn_with_state(
            Timeouts {
                request: settings.request_timeout,
                upload: settings.upload_timeout,
                ask: settings.ask_timeout,
            },
            timeout::limit,
        ))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            Problem::new(
                ErrorCode::Internal,
                "the server could not complete the request",
            )
            .into_response()
        }))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Logs a failed response with its path: an error when pai failed (500),
/// a warning when a dependency was unavailable or too slow (503, 504: the
/// client was told to retry, and the dependency logs its own cause).
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    let latency_ms = latency.as_millis();
    match class {
        ServerErrorsFailureClass::StatusCode(code)
            if code == axum::http::StatusCode::SERVICE_UNAVAILABLE
                || code == axum::http::StatusCode::GATEWAY_TIMEOUT =>
        {
            tracing::warn!(parent: span, %code, latency_ms, "response failed");
        }
        other @ (ServerErrorsFailureClass::StatusCode(_) | ServerErrorsFailureClass::Error(_)) => {
            tracing::error!(parent: span, classification = %other, latency_ms, "response failed");
        }
    }
}

/// Serves the gateway on `listener` until `shutdown` is cancelled.
/// Services registered in `local` are called in process.
pub async fn serve(
    settings: GatewaySettings,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    metrics::handle();
    let pool = pai_common::db::pool(&settings.database)?;
    let (app, state) = build(&settings, pool, &local)?;

    let feed = state.feed.clone();
    let revocations = Arc::clone(&state.revocations);
    let follow = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { revocations.follow(feed, shutdown).await }
    });
    let limits = state.limits.clone();
    let pruning = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => limits.retain_recent(),
                }
            }
        }
    });

    tracing::info!(addr = ?listener.local_addr().ok(), "gateway listening");
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await
    .context("gateway HTTP server");
    shutdown.cancel();
    let _ = tokio::join!(follow, pruning);
    result
}
