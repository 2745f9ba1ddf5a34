//! `/api/users/*`: profile, password, account status, deactivation, deletion.

use axum::extract::State;
use axum::http::StatusCode;
use pai_proto::v1 as pb;

use crate::dto::{
    AccountStatus, ChangePasswordRequest, PasswordConfirmation, ReactivateRequest, TokenResponse,
    UpdateProfileRequest, User,
};
use crate::extract::{AuthUser, ClientIp, Json, UserAgent, client_info};
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

#[utoipa::path(get, path = "/api/users/profile", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
pub async fn profile(State(state): State<AppState>, auth: AuthUser) -> ApiResult<axum::Json<User>> {
    let user = state
        .account
        .next()
        .get_profile(authorized(&auth.token, pb::Empty {}))
        .await?
        .into_inner();
    Ok(axum::Json(user.into()))
}

#[utoipa::path(put, path = "/api/users/profile", tag = "users", security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses((status = 200, body = User), (status = 409, body = Problem)))]
pub async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<UpdateProfileRequest>,
) -> ApiResult<axum::Json<User>> {
    let user = state
        .account
        .next()
        .update_profile(authorized(
            &auth.token,
            pb::UpdateProfileRequest {
                username: body.username,
                email: body.email,
                display_name: body.display_name,
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(user.into()))
}

#[utoipa::path(post, path = "/api/users/change-password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 423, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    state
        .account
        .next()
        .change_password(authorized(
            &auth.token,
            pb::ChangePasswordRequest {
                old_password: body.old_password,
                new_password: body.new_password,
            },
        ))
        .await?;
    state.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/users/account", tag = "users", security(("bearer" = [])),
    request_body = PasswordConfirmation,
    responses((status = 204), (status = 403, body = Problem), (status = 423, body = Problem)))]
pub async fn delete_account(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    state
        .account
        .next()
        .delete_account(authorized(
            &auth.token,
            pb::PasswordConfirmation {
                password: body.password,
            },
        ))
        .await?;
    state.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/users/account-status", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = AccountStatus)))]
pub async fn account_status(
    State(state): State<AppState>,
    auth: AuthUser,
) -> ApiResult<axum::Json<AccountStatus>> {
    let status = state
        .account
        .next()
        .account_status(authorized(&auth.token, pb::Empty {}))
        .await?
        .into_inner();
    Ok(axum::Json(status.into()))
}

#[utoipa::path(post, path = "/api/users/deactivate", tag = "users", security(("bearer" = [])),
    request_body = PasswordConfirmation,
    responses((status = 204), (status = 403, body = Problem), (status = 423, body = Problem)))]
pub async fn deactivate(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    state
        .account
        .next()
        .deactivate(authorized(
            &auth.token,
            pb::PasswordConfirmation {
                password: body.password,
            },
        ))
        .await?;
    state.sync_revocations().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/users/reactivate", tag = "users", request_body = ReactivateRequest,
    params(("X-Pai-Token-Mode" = Option<String>, Header,
        description = "`cookie`: the refresh token goes into a cookie, as on login")),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 423, body = Problem)))]
pub async fn reactivate(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    mode: crate::cookies::TokenMode,
    Json(body): Json<ReactivateRequest>,
) -> ApiResult<axum::response::Response> {
    let tokens = state
        .auth
        .clone()
        .reactivate(pb::ReactivateRequest {
            email: body.email,
            password: body.password,
            client: Some(client_info(ip, agent.as_deref())),
        })
        .await?
        .into_inner();
    crate::routes::browser::token_response(&state, mode.cookie, StatusCode::OK, tokens)
}
