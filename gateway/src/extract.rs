//! Request extractors: JSON bodies whose rejections are problems, the
//! authenticated user, and the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use pai_common::identity::{Claims, TokenError, bearer_token};
use pai_common::{ErrorCode, UserContext};
use pai_proto::v1::ClientInfo;
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::state::AppState;

/// `axum::Json` whose rejections answer problem+json with the right status
/// (400 malformed, 415 wrong content type, 413 too large, 422 missing field).
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_problem(&rejection)),
        };
        if holds_nul(&value) {
            return Err(Problem::new(
                ErrorCode::BadRequest,
                "the request body holds a NUL character (\\u0000), which no text may contain",
            ));
        }
        serde_json::from_value(value).map(Self).map_err(|err| {
            Problem::new(
                ErrorCode::Unprocessable,
                format!("invalid request body: {err}"),
            )
        })
    }
}

/// Refuses a query string holding an encoded NUL (`%00`) before any route
/// reads it: no parameter may carry one to PostgreSQL, whose text cannot
/// hold it.
pub async fn no_nul_in_query(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = request.uri().query().unwrap_or_default();
    if query
        .as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%00"))
    {
        return Problem::new(
            ErrorCode::BadRequest,
            "the query string holds a NUL character (%00), which no parameter may contain",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether a string of `value`, or a key, holds U+0000: PostgreSQL's text
/// cannot store it, so it is refused before it reaches a service.
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(members) => members
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let code = match rejection.status().as_u16() {
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::Unprocessable,
        _ => ErrorCode::BadRequest,
    };
    let detail = match rejection {
        JsonRejection::JsonDataError(err) => format!("invalid request body: {}", err.body_text()),
        JsonRejection::JsonSyntaxError(_) => "the request body is not valid JSON".to_owned(),
        JsonRejection::MissingJsonContentType(_) => {
            "expected a body with Content-Type: application/json".to_owned()
        }
        JsonRejection::BytesRejection(_) => {
            "the request body is too large or unreadable".to_owned()
        }
        _ => rejection.body_text(),
    };
    Problem::new(code, detail)
}

/// The caller's address: the TCP peer (a proxy in front must be trusted
/// explicitly before forwarded headers could count; none are read yet).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        Ok(Self(ip))
    }
}

/// Where the request came from, as recorded on sessions.
pub fn client_info(parts_ip: ClientIp, user_agent: Option<&str>) -> ClientInfo {
    ClientInfo {
        ip: parts_ip.0.to_string(),
        user_agent: user_agent.unwrap_or_default().to_owned(),
    }
}

/// The `User-Agent` header, if any.
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// A caller with a verified, unrevoked access token, within its rate limit.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: UserContext,
    pub claims: Claims,
    /// The bearer token, forwarded to services that verify it again.
    pub token: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or_else(|| unauthenticated(&TokenError::Missing))?;
        let (claims, user) = state
            .keys
            .verify_access_claims(token)
            .map_err(|e| unauthenticated(&e))?;
        if state.revocations.is_revoked(user.session_id) {
            return Err(unauthenticated(&TokenError::Revoked));
        }
        state.limits.check_user(user.user_id)?;
        parts.extensions.insert(user);
        Ok(Self {
            user,
            claims,
            token: token.to_owned(),
        })
    }
}

fn unauthenticated(err: &TokenError) -> Problem {
    Problem::new(ErrorCode::Unauthenticated, err.to_string())
}
