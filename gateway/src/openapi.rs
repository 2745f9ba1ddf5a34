//! The OpenAPI document, served at `/api/openapi.json`.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::dto::{AskDelta, AskStarted};
use crate::problem;
use crate::routes::{admin, auth, browser, documents, mail, ops, queries, search, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "pai", description = "Self-hosted personal AI agent: REST/JSON gateway."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, browser::accounts,
        browser::switch, auth::sessions,
        auth::revoke_session, auth::revoke_all_sessions, auth::validate,
        users::profile, users::update_profile, users::change_password, users::delete_account,
        users::account_status, users::deactivate, users::reactivate,
        admin::list_users, admin::deactivate_user, admin::reactivate_user,
        documents::upload, documents::list, documents::get, documents::download,
        documents::delete, documents::reprocess, search::search,
        queries::ask, queries::list, queries::get, queries::delete,
        mail::connect, mail::callback, mail::accounts, mail::sync, mail::remove,
        mail::list, mail::get, mail::thread,
        ops::healthz, ops::readyz, ops::metrics_text,
    ),
    // The data of the `started` and `delta` server-sent events of an answer.
    components(schemas(AskStarted, AskDelta)),
    modifiers(&BearerAuth, &ProblemResponses),
    tags(
        (name = "auth", description = "Accounts, logins and sessions"),
        (name = "users", description = "The caller's own account"),
        (name = "admin", description = "Administrators only"),
        (name = "documents", description = "Uploaded PDFs and their ingest"),
        (name = "search", description = "Hybrid search over the caller's data"),
        (name = "queries", description = "Questions answered from the caller's data, and their history"),
        (name = "mail", description = "Connected Gmail accounts and their mail"),
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

/// Every error is an RFC 9457 problem: this documents it so on every `/api`
/// operation, with the errors the gateway's shared layers can answer on any
/// route (malformed input, authentication, body limits, rate limits, time
/// limits and unavailable services) beside each route's own.
struct ProblemResponses;

/// Errors any `/api` operation may answer.
const ANY: [(&str, &str); 4] = [
    (
        "400",
        "malformed request: a parameter or the body does not parse",
    ),
    ("429", "rate limit reached; see Retry-After"),
    ("503", "a service pai needs is unavailable; try again"),
    (
        "504",
        "the request took longer than the gateway's time limit",
    ),
];

/// Errors of an operation that takes a bearer token.
const SECURED: [(&str, &str); 1] = [("401", "missing, invalid, expired or revoked token")];

/// Errors of an operation with a request body.
const WITH_BODY: [(&str, &str); 3] = [
    ("413", "the body is larger than the limit"),
    ("415", "the body is not of the documented media type"),
    ("422", "the body parses but a field is invalid"),
];

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                document_problems(operation);
            }
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
}

fn document_problems(operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let with_body = operation.request_body.is_some();
    let common = ANY
        .iter()
        .chain(SECURED.iter().filter(|_| secured))
        .chain(WITH_BODY.iter().filter(|_| with_body));
    for (code, description) in common {
        operation
            .responses
            .responses
            .entry((*code).to_owned())
            .or_insert_with(|| RefOr::T(Response::new(*description)));
    }
    for (code, response) in operation.responses.responses.iter_mut() {
        let is_error = code.starts_with('4') || code.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response) {
            response.content.clear();
            response
                .content
                .insert(problem::CONTENT_TYPE.to_owned(), problem_content());
        }
    }
}
