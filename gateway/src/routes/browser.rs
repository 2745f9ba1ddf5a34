//! Cookie mode of `/api/auth/*` (see [`crate::cookies`]): the token
//! response that sets cookies, the accounts a browser is signed into, and
//! switching between them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pai_common::ErrorCode;
use pai_proto::v1 as pb;
use uuid::Uuid;

use crate::cookies::{Jar, SetCookies};
use crate::dto::{BrowserAccount, BrowserAccounts, SwitchRequest, TokenResponse};
use crate::extract::{ClientIp, Json, UserAgent, client_info};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Answers `tokens` as JSON; in cookie mode the refresh token goes into
/// its account's cookie instead, that account becomes current, and a new
/// CSRF token is set and returned.
pub fn token_response(
    state: &AppState,
    cookie_mode: bool,
    status: StatusCode,
    tokens: pb::TokenResponse,
) -> ApiResult<Response> {
    let mut body = TokenResponse::from(tokens);
    if !cookie_mode {
        return Ok((status, axum::Json(body)).into_response());
    }
    let (_, user) = state
        .keys
        .verify_access_claims(&body.access_token)
        .map_err(|err| {
            tracing::error!(%err, "auth answered an access token the gateway cannot verify");
            Problem::new(ErrorCode::Internal, pai_common::error::INTERNAL_MESSAGE)
        })?;
    let mut cookies = SetCookies::default();
    cookies.sign_in(
        state.cookies,
        user.user_id,
        body.refresh_token.take().unwrap_or_default(),
    );
    body.csrf_token = Some(cookies.csrf(state.cookies));
    let mut response = (status, axum::Json(body)).into_response();
    cookies.apply(&mut response)?;
    Ok(response)
}

/// Rotates the refresh token this browser holds for `user_id` and answers
/// in cookie mode; a refused token is forgotten.
pub async fn refresh_from_cookie(
    state: &AppState,
    jar: &Jar,
    user_id: Uuid,
    client: pb::ClientInfo,
    missing: ErrorCode,
) -> ApiResult<Response> {
    let Some(token) = jar.refresh_token(user_id) else {
        return Err(Problem::new(
            missing,
            "this browser holds no session of that account",
        ));
    };
    jar.check_csrf()?;
    let answer = state
        .auth
        .clone()
        .refresh(pb::RefreshRequest {
            refresh_token: token.to_owned(),
            client: Some(client),
        })
        .await;
    match answer {
        Ok(tokens) => token_response(state, true, StatusCode::OK, tokens.into_inner()),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            state.sync_revocations().await;
            let mut response = Problem::from(status).into_response();
            let mut cookies = SetCookies::default();
            cookies.forget(state.cookies, user_id);
            if jar.current == Some(user_id) {
                cookies.clear_current(state.cookies);
            }
            cookies.apply(&mut response)?;
            Ok(response)
        }
        Err(status) => Err(status.into()),
    }
}

pub fn parse_user_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Problem::new(ErrorCode::Unprocessable, "user_id is not a UUID"))
}

#[utoipa::path(get, path = "/api/auth/accounts", tag = "auth",
    params(("X-CSRF-Token" = Option<String>, Header,
        description = "the pai_csrf cookie; needed when the browser holds an account")),
    responses((status = 200, body = BrowserAccounts), (status = 403, body = Problem)))]
/// The accounts this browser is signed into in cookie mode (one
/// `pai_refresh_<user_id>` cookie each), the `pai_current` one marked.
pub async fn accounts(jar: Jar) -> ApiResult<axum::Json<BrowserAccounts>> {
    if !jar.accounts.is_empty() {
        jar.check_csrf()?;
    }
    Ok(axum::Json(BrowserAccounts {
        accounts: jar
            .accounts
            .iter()
            .map(|(id, _)| BrowserAccount {
                user_id: id.to_string(),
                current: jar.current == Some(*id),
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/auth/switch", tag = "auth", request_body = SwitchRequest,
    params(("X-CSRF-Token" = String, Header, description = "the pai_csrf cookie")),
    responses((status = 200, body = TokenResponse,
        description = "a new access token of that account, now current (cookie mode)"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
/// Makes an account this browser holds current and refreshes it.
pub async fn switch(
    State(state): State<AppState>,
    ip: ClientIp,
    UserAgent(agent): UserAgent,
    jar: Jar,
    Json(body): Json<SwitchRequest>,
) -> ApiResult<Response> {
    let user_id = parse_user_id(&body.user_id)?;
    let client = client_info(ip, agent.as_deref());
    refresh_from_cookie(&state, &jar, user_id, client, ErrorCode::NotFound).await
}
