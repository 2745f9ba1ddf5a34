//! `/api/auth/*`: register, login, refresh, logout, sessions, validate.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use pai_common::ErrorCode;
use pai_proto::v1 as pb;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{
    LoginRequest, RefreshRequest, RegisterRequest, RevokedCount, SessionList, TokenResponse,
    Validation, unix_time,
};
use crate::extract::{AuthUser, ClientIp, Json, UserAgent, client_info};
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
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
    Ok((StatusCode::CREATED, axum::Json(TokenResponse::from(tokens))))
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 423, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    Json(body): Json<LoginRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
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
    Ok(axum::Json(tokens.into()))
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let answer = state
        .auth
        .clone()
        .refresh(pb::RefreshRequest {
            refresh_token: body.refresh_token,
            client: Some(client_info(ip, agent.as_deref())),
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
    Ok(axum::Json(answer?.into_inner().into()))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<StatusCode> {
    state
        .account
        .next()
        .logout(authorized(&auth.token, pb::Empty {}))
        .await?;
    state.revocations.insert(
        auth.user.session_id,
        std::time::SystemTime::now() + state.keys.access_lifetime(),
    );
    Ok(StatusCode::NO_CONTENT)
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
