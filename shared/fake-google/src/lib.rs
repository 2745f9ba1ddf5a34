//! A fake Google for tests: the OAuth 2.0 authorization, token and revoke
//! endpoints and the Gmail v1 API (profile, messages.list/get, history.list,
//! labels.list) in Google's real wire format, over in-memory mailboxes loaded
//! from `.eml` files or generated. Test knobs (add or delete mail, expire
//! history or tokens, inject 429/503, slow Gmail down, count calls) are
//! methods on [`FakeGoogleHandle`] and HTTP routes under `/_fake/`.

pub mod control;
pub mod error;
pub mod generate;
mod gmail;
pub mod headers;
pub mod mailbox;
pub mod mime;
mod oauth;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use crate::control::FakeGoogleHandle;
pub use crate::generate::{GenerateOptions, generate_messages};
pub use crate::mailbox::{Label, Mailbox, StoredMessage};
pub use crate::state::{AuthorizationRequest, FakeGoogle, FakeGoogleConfig, GrantInfo};

/// The Gmail scope pai asks for.
pub const GMAIL_READONLY_SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";

impl FromRef<FakeGoogleHandle> for Arc<state::Shared> {
    fn from_ref(handle: &FakeGoogleHandle) -> Self {
        handle.shared.clone()
    }
}

/// Returns the fake's routes, Google's paths and the `/_fake/` ones.
pub fn router(handle: FakeGoogleHandle) -> Router {
    let users = "/gmail/v1/users/{user_id}";
    let gmail = Router::new()
        .route(&format!("{users}/profile"), get(gmail::profile))
        .route(&format!("{users}/messages"), get(gmail::list_messages))
        .route(&format!("{users}/messages/{{id}}"), get(gmail::get_message))
        .route(
            &format!("{users}/messages/{{message_id}}/attachments/{{id}}"),
            get(gmail::get_attachment),
        )
        .route(&format!("{users}/history"), get(gmail::list_history))
        .route(&format!("{users}/labels"), get(gmail::list_labels))
        .route_layer(axum::middleware::from_fn_with_state(
            handle.clone(),
            control::delay,
        ));
    Router::new()
        .route("/o/oauth2/v2/auth", get(oauth::authorize))
        .route("/token", post(oauth::token))
        .route("/revoke", post(oauth::revoke))
        .merge(gmail)
        .merge(control::routes())
        .with_state(handle)
}

/// Serves the fake on a bound listener until `shutdown` completes; returns
/// the handle at once (the server runs on a spawned task).
pub fn serve_on(
    listener: TcpListener,
    fake: FakeGoogle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, FakeGoogleHandle)> {
    let addr = listener.local_addr()?;
    let handle = FakeGoogleHandle {
        shared: state::Shared::new(fake),
        addr,
    };
    let app = router(handle.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "fake google stopped");
        }
    });
    Ok((addr, handle))
}

/// Starts the fake on `127.0.0.1:0` for an in-process test; it runs until
/// the test's runtime ends.
///
/// # Panics
/// When no local port can be bound, which a test cannot recover from.
pub async fn spawn(fake: FakeGoogle) -> (SocketAddr, FakeGoogleHandle) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0 for the fake google");
    serve_on(listener, fake, std::future::pending()).expect("reading the fake google's address")
}
