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
    /// Only hits of these sources: document (or email) ids, comma-separated,
    /// at most 100 (400 past it or for anything not a UUID).
    pub document_id: Option<String>,
}

/// The most ids `document_id` may list (the search service's bound too).
const MAX_DOCUMENT_IDS: usize = 100;

/// The ids of a comma-separated `document_id` (empty entries skipped);
/// none when it is absent.
fn document_ids(value: Option<&str>) -> Result<Vec<String>, Problem> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let ids: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(Problem::new(
            ErrorCode::BadRequest,
            "document_id: name at least one document id, or leave it out",
        ));
    }
    if ids.len() > MAX_DOCUMENT_IDS {
        return Err(Problem::new(
            ErrorCode::BadRequest,
            format!("document_id: at most {MAX_DOCUMENT_IDS} ids"),
        ));
    }
    ids.into_iter()
        .enumerate()
        .map(|(n, id)| {
            uuid::Uuid::parse_str(id)
                .map(|uuid| uuid.to_string())
                .map_err(|_| {
                    Problem::new(
                        ErrorCode::BadRequest,
                        format!("document_id: id {} is not a UUID", n + 1),
                    )
                })
        })
        .collect()
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
    let source_ids = document_ids(params.document_id.as_deref())?;
    let response = state
        .search
        .for_user(auth.user.user_id)
        .search(authorized(
            &auth.token,
            pb::SearchRequest {
                query: params.q,
                k,
                mode: mode as i32,
                source_kind: params.source.unwrap_or_default(),
                category: params.category.unwrap_or_default(),
                source_ids,
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(response.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_comma_separated_uuids() {
        assert!(document_ids(None).unwrap().is_empty());
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let upper = a.to_string().to_uppercase();
        assert_eq!(
            document_ids(Some(&format!("{upper}, {b},"))).unwrap(),
            [a.to_string(), b.to_string()]
        );
        let too_many = vec![a.to_string(); MAX_DOCUMENT_IDS + 1].join(",");
        for bad in ["", " , ", "nope", &format!("{a},{b}x"), &too_many] {
            let problem = document_ids(Some(bad)).unwrap_err();
            assert_eq!(problem.status, 400, "{bad:?}");
            assert!(problem.detail.starts_with("document_id: "), "{bad:?}");
        }
    }
}
