//! `/api/admin/*`: administrators list, deactivate and reactivate users.

use axum::extract::{Path, Query, State};
use pai_common::ErrorCode;
use pai_proto::v1 as pb;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{User, UserPage};
use crate::extract::AuthUser;
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn require_admin(auth: &AuthUser) -> Result<(), Problem> {
    if auth.user.is_admin {
        Ok(())
    } else {
        Err(Problem::new(
            ErrorCode::Forbidden,
            "administrator role required",
        ))
    }
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(PageParams), responses((status = 200, body = UserPage), (status = 403, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<PageParams>,
) -> ApiResult<axum::Json<UserPage>> {
    require_admin(&auth)?;
    let page = state
        .admin
        .clone()
        .list_users(authorized(
            &auth.token,
            pb::ListUsersRequest {
                page: Some(pb::PageRequest {
                    limit: params.limit.unwrap_or(0),
                    cursor: params.cursor.unwrap_or_default(),
                }),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(UserPage {
        users: page.users.into_iter().map(Into::into).collect(),
        next_cursor: Some(page.next_cursor).filter(|c| !c.is_empty()),
    }))
}

async fn set_active(
    state: &AppState,
    auth: &AuthUser,
    user_id: String,
    active: bool,
) -> ApiResult<axum::Json<User>> {
    require_admin(auth)?;
    let user = state
        .admin
        .clone()
        .set_user_active(authorized(
            &auth.token,
            pb::SetUserActiveRequest { user_id, active },
        ))
        .await?
        .into_inner();
    state.sync_revocations().await;
    Ok(axum::Json(user.into()))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn deactivate_user(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_active(&state, &auth, id, false).await
}

#[utoipa::path(post, path = "/api/admin/users/{id}/reactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = User), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn reactivate_user(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_active(&state, &auth, id, true).await
}
