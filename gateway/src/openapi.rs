//! The OpenAPI document, served at `/api/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, auth, documents, ops, search, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "pai", description = "Self-hosted personal AI agent: REST/JSON gateway."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::sessions,
        auth::revoke_session, auth::revoke_all_sessions, auth::validate,
        users::profile, users::update_profile, users::change_password, users::delete_account,
        users::account_status, users::deactivate, users::reactivate,
        admin::list_users, admin::deactivate_user, admin::reactivate_user,
        documents::upload, documents::list, documents::get, documents::download,
        documents::delete, documents::reprocess, search::search,
        ops::healthz, ops::readyz, ops::metrics_text,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts, logins and sessions"),
        (name = "users", description = "The caller's own account"),
        (name = "admin", description = "Administrators only"),
        (name = "documents", description = "Uploaded PDFs and their ingest"),
        (name = "search", description = "Hybrid search over the caller's data"),
        (name = "ops", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
