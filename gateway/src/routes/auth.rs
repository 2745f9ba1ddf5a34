//! `/api/auth/*`: register, login, refresh, logout, sessions, validate.

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pai_common::ErrorCode;
use pai_proto::v1 as pb;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::cookies::{Jar, SetCookies, TokenMode};
use crate::dto::{
    LoginRequest, RefreshRequest, RegisterRequest, RevokedCount, SessionList, TokenResponse,
    Validation, unix_time,
};
use crate::extract::{AuthUser, ClientIp, Json, UserAgent, client_info};
use crate::problem::{ApiResult, Problem};
use crate::routes::browser::{parse_user_id, refresh_from_cookie, token_response};
use crate::state::{AppState, authorized};

/// The cookie mode's request header, documented on the routes that take it.
const MODE_PARAM: &str = "`cookie`: answer the refresh token in the HttpOnly cookie \
    `pai_refresh_<user_id>` (not in the body), make that account current (`pai_current`) \
    and set `pai_csrf`, also returned as `csrf_token`";

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    params(("X-Pai-Token-Mode" = Option<String>, Header, description = MODE_PARAM)),
    responses((status = 201, body = TokenResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    mode: TokenMode,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let tokens = state
        .auth
        .clone()
        .register(pb::RegisterRequest {
            email: body.email,
            username: body.username,
            password: body.password,
            display_name: body.display_name,
            client: Some(client_info(ip, agent.as_deref())),
        })
        .await?
        .into_inner();
    token_response(&state, mode.cookie, StatusCode::CREATED, tokens)
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    params(("X-Pai-Token-Mode" = Option<String>, Header, description = MODE_PARAM)),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 423, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    mode: TokenMode,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Response> {
    let login =
        body.login.or(body.email).or(body.username).ok_or_else(|| {
            Problem::new(ErrorCode::Unprocessable, "email or username is required")
        })?;
    let tokens = state
        .auth
        .clone()
        .login(pb::LoginRequest {
            login,
            password: body.password,
            client: Some(client_info(ip, agent.as_deref())),
        })
        .await?
        .into_inner();
    token_response(&state, mode.cookie, StatusCode::OK, tokens)
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>,
        description = "`{refresh_token}`; in cookie mode empty or `{user_id}`"),
    params(("X-Pai-Token-Mode" = Option<String>, Header, description = MODE_PARAM),
        ("X-CSRF-Token" = Option<String>, Header,
            description = "the pai_csrf cookie; needed when the token comes from a cookie")),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    mode: TokenMode,
    jar: Jar,
    request: Request,
) -> ApiResult<Response> {
    let body = optional_json::<RefreshRequest>(request).await?;
    let client = client_info(ip, agent.as_deref());
    let (refresh_token, user_id) = match body {
        Some(body) => (body.refresh_token, body.user_id),
        None => (None, None),
    };
    let Some(refresh_token) = refresh_token else {
        // Cookie mode: the token of `user_id`, or of the current account.
        let user_id = match user_id {
            Some(id) => parse_user_id(&id)?,
            None => jar.current.ok_or_else(|| {
                Problem::new(
                    ErrorCode::Unauthenticated,
                    "no refresh_token, and this browser has no current account",
                )
            })?,
        };
        return refresh_from_cookie(&state, &jar, user_id, client, ErrorCode::Unauthenticated)
            .await;
    };
    let answer = state
        .auth
        .clone()
        .refresh(pb::RefreshRequest {
            refresh_token,
            client: Some(client),
        })
        .await;
    // A refused refresh may be a reused token, which revokes its whole
    // session: refuse that session's access tokens here before answering,
    // as the other revoking routes do.
    if let Err(status) = &answer
        && status.code() == tonic::Code::Unauthenticated
    {
        state.sync_revocations().await;
    }
    token_response(&state, mode.cookie, StatusCode::OK, answer?.into_inner())
}

/// A JSON body, or `None` when the request has none (no body and no
/// `Content-Type`).
async fn optional_json<T: serde::de::DeserializeOwned>(request: Request) -> ApiResult<Option<T>> {
    let has_type = request.headers().contains_key(header::CONTENT_TYPE);
    let (parts, body) = request.into_parts();
    // A refresh body is a few dozen bytes.
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.map_err(|_| {
        Problem::new(
            ErrorCode::PayloadTooLarge,
            "the request body is too large or unreadable",
        )
    })?;
    if bytes.is_empty() && !has_type {
        return Ok(None);
    }
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let Json(value) = Json::<T>::from_request(request, &()).await?;
    Ok(Some(value))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    params(("X-Pai-Token-Mode" = Option<String>, Header,
            description = "`cookie`: also clear this account's cookies; another held account becomes current"),
        ("X-CSRF-Token" = Option<String>, Header, description = "the pai_csrf cookie (cookie mode)")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    mode: TokenMode,
    jar: Jar,
    auth: AuthUser,
) -> ApiResult<Response> {
    if mode.cookie {
        jar.check_csrf()?;
    }
    state
        .account
        .next()
        .logout(authorized(&auth.token, pb::Empty {}))
        .await?;
    state.revocations.insert(
        auth.user.session_id,
        std::time::SystemTime::now() + state.keys.access_lifetime(),
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    if mode.cookie {
        let user_id = auth.user.user_id;
        let mut cookies = SetCookies::default();
        cookies.forget(state.cookies, user_id);
        if jar.current.is_none_or(|current| current == user_id) {
            match jar.accounts.iter().find(|(id, _)| *id != user_id) {
                Some((other, _)) => cookies.current(state.cookies, *other),
                None => cookies.clear_current(state.cookies),
            }
        }
        cookies.apply(&mut response)?;
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = Problem)))]
pub async fn sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<axum::Json<SessionList>> {
    let list = state
        .account
        .next()
        .list_sessions(authorized(&auth.token, pb::Empty {}))
        .await?
        .into_inner();
    Ok(axum::Json(SessionList {
        sessions: list.sessions.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .account
        .next()
        .revoke_session(authorized(
            &auth.token,
            pb::RevokeSessionRequest { session_id: id },
        ))
        .await?;
    state.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RevokeAllParams {
    /// Keep the session making this request.
    #[serde(default)]
    pub keep_current: bool,
}

#[utoipa::path(delete, path = "/api/auth/sessions/all", tag = "auth", security(("bearer" = [])),
    params(RevokeAllParams), responses((status = 200, body = RevokedCount)))]
pub async fn revoke_all_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<RevokeAllParams>,
) -> ApiResult<axum::Json<RevokedCount>> {
    let revoked = state
        .account
        .next()
        .revoke_all_sessions(authorized(
            &auth.token,
            pb::RevokeAllSessionsRequest {
                keep_current: params.keep_current,
            },
        ))
        .await?
        .into_inner()
        .revoked;
    state.sync_revocations().await;
    Ok(axum::Json(RevokedCount { revoked }))
}

#[utoipa::path(get, path = "/api/auth/validate", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Validation), (status = 401, body = Problem)))]
pub async fn validate(auth: AuthUser) -> axum::Json<Validation> {
    axum::Json(Validation {
        valid: true,
        user_id: auth.user.user_id.to_string(),
        session_id: auth.user.session_id.to_string(),
        is_admin: auth.user.is_admin,
        issuer: auth.claims.iss,
        audience: auth.claims.aud,
        issued_at: unix_time(auth.claims.iat),
        expires_at: unix_time(auth.claims.exp),
    })
}
