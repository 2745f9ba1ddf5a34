//! The web app: the Next.js static export in `WEB_DIR`, served at `/` from
//! the gateway's own origin (no Node at run time). Routes are folders
//! (`/documents/` is `documents/index.html`); anything else is the export's
//! `404.html` with status 404.

use std::path::Path;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Scripts and styles are the export's own; Next inlines its hydration
/// data, hence `'unsafe-inline'` for scripts. PDFs open as `blob:` URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-src 'self' blob:; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Where the export keeps its content-hashed bundles.
const IMMUTABLE_PREFIX: &str = "/_next/static/";

/// The router that serves the export in `dir`, or `None` when `dir` holds
/// no built app (`index.html`).
pub fn router(dir: &Path) -> Option<Router> {
    if !dir.join("index.html").is_file() {
        return None;
    }
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .not_found_service(ServeFile::new(dir.join("404.html")));
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Some(
        Router::new()
            .fallback_service(files)
            .layer(axum::middleware::from_fn(cache_control))
            .layer(header(
                header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY,
            ))
            .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(header(header::X_FRAME_OPTIONS, "DENY"))
            .layer(header(header::REFERRER_POLICY, "no-referrer"))
            .layer(CompressionLayer::new()),
    )
}

/// Bundles whose names carry their hash are cached for good; pages are
/// revalidated on every load, so a new build is seen at once.
async fn cache_control(request: Request, next: Next) -> Response {
    let immutable = request.uri().path().starts_with(IMMUTABLE_PREFIX);
    let mut response = next.run(request).await;
    let value = if immutable && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}
