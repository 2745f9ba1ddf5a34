//! `GET /api/search`: hybrid search over the caller's own data.

use axum::extract::{Query, State};
use pai_common::ErrorCode;
use pai_proto::v1::{self as pb, SearchMode};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::SearchResults;
use crate::extract::AuthUser;
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchParams {
    /// The query text: words, at most 1,000 characters (422 past it).
    pub q: String,
    /// How many hits, 1 to 50 (default 10).
    pub k: Option<u32>,
    /// `hybrid` (default), `bm25` or `vector`.
    pub mode: Option<String>,
    /// `document` or `email`.
    pub source: Option<String>,
    /// `financial`, `long_form` or `generic`.
    pub category: Option<String>,
}

#[utoipa::path(get, path = "/api/search", tag = "search", security(("bearer" = [])),
    params(SearchParams), responses((status = 200, body = SearchResults), (status = 400, body = Problem),
        (status = 422, description = "the query is longer than 1,000 characters", body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<SearchParams>,
) -> ApiResult<axum::Json<SearchResults>> {
    let mode = match params.mode.as_deref().unwrap_or("hybrid") {
        "hybrid" => SearchMode::Hybrid,
        "bm25" => SearchMode::Bm25,
        "vector" => SearchMode::Vector,
        other => {
            return Err(Problem::new(
                ErrorCode::BadRequest,
                format!("mode: {other:?} is not one of hybrid, bm25, vector"),
            ));
        }
    };
    let k = params.k.unwrap_or(10);
    if !(1..=50).contains(&k) {
        return Err(Problem::new(
            ErrorCode::BadRequest,
            "k: must be between 1 and 50",
        ));
    }
    let response = state
        .search
        .clone()
        .search(authorized(
            &auth.token,
            pb::SearchRequest {
                query: params.q,
                k,
                mode: mode as i32,
                source_kind: params.source.unwrap_or_default(),
                category: params.category.unwrap_or_default(),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(response.into()))
}
