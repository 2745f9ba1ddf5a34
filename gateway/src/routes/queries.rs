//! `/api/queries*`: questions answered from the caller's own data by the
//! local model, returned whole as JSON or streamed as server-sent events
//! ([`answer`]), and the history of them.

mod answer;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pai_common::ErrorCode;
use pai_proto::v1 as pb;
use serde::Deserialize;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use utoipa::IntoParams;
use uuid::Uuid;

use self::answer::{event_stream, whole_answer};
use crate::dto::{AskBody, QueryPage, QueryRecord};
use crate::extract::{AuthUser, Json};
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

/// The longest question, in characters.
const MAX_QUERY_CHARS: usize = 1000;
/// The most passages an answer is built from.
const MAX_K: u32 = 20;
/// The most documents a question may be limited to.
const MAX_DOCUMENT_IDS: usize = 100;
/// The largest page of the history.
const MAX_PAGE: u32 = 100;
/// The metadata in which the inference service says when to retry.
const RETRY_AFTER: &str = "retry-after";
const EVENT_STREAM: &str = "text/event-stream";

/// Checks a question and turns it into the inference service's request.
fn ask_request(body: AskBody) -> ApiResult<pb::AskRequest> {
    let invalid = |detail: String| Problem::new(ErrorCode::Unprocessable, detail);
    if body.query.trim().is_empty() {
        return Err(invalid("query: must not be empty".into()));
    }
    if body.query.chars().count() > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "query: must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let k = match body.k {
        None => 0,
        Some(k @ 1..=MAX_K) => k,
        Some(_) => return Err(invalid(format!("k: must be between 1 and {MAX_K}"))),
    };
    let document_ids = body.document_ids.unwrap_or_default();
    if document_ids.len() > MAX_DOCUMENT_IDS {
        return Err(invalid(format!(
            "document_ids: at most {MAX_DOCUMENT_IDS} ids"
        )));
    }
    let source_kind = match body.source.as_deref() {
        // Ids of documents limit the question to documents.
        None if document_ids.is_empty() => "",
        None | Some("document") => "document",
        Some("email") if document_ids.is_empty() => "email",
        Some("email") => {
            return Err(invalid(
                "document_ids: only with source \"document\" (or none)".into(),
            ));
        }
        Some(other) => {
            return Err(invalid(format!(
                "source: {other:?} is not one of document, email"
            )));
        }
    };
    let max_tokens = match body.max_tokens {
        None => 0,
        Some(0) => return Err(invalid("max_tokens: must be at least 1".into())),
        Some(n) => n,
    };
    Ok(pb::AskRequest {
        query: body.query,
        k,
        source_kind: source_kind.to_owned(),
        category: body.category.unwrap_or_default(),
        source_ids: document_ids.iter().map(Uuid::to_string).collect(),
        max_tokens,
    })
}

/// Whether the client asked for server-sent events: `Accept` names
/// `text/event-stream` with a quality above zero.
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case(EVENT_STREAM) && !parts.any(is_zero_quality)
        })
}

/// Whether a media-range parameter is `q=0` (not acceptable).
fn is_zero_quality(parameter: &str) -> bool {
    parameter.split_once('=').is_some_and(|(name, value)| {
        name.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f32>() == Ok(0.0)
    })
}

/// The seconds in the status's `retry-after` metadata, rounded up.
fn retry_after_seconds(metadata: &MetadataMap) -> Option<u64> {
    let value = metadata.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let seconds = value.parse::<f64>().ok()?;
    // Finite and positive, rounded up; a value beyond u64 saturates.
    (seconds.is_finite() && seconds > 0.0).then(|| seconds.ceil() as u64)
}

/// The problem for a failed `Ask`: a full queue is 429 with `Retry-After`
/// (the seconds the service named, else 1), an invalid question 422, the
/// rest as every other call maps them (a 503 keeps a `Retry-After` the
/// service named).
fn ask_problem(status: tonic::Status) -> Problem {
    if status.code() == tonic::Code::InvalidArgument {
        return Problem::new(ErrorCode::Unprocessable, status.message());
    }
    let named = retry_after_seconds(status.metadata());
    let problem = Problem::from(status);
    let too_many = ErrorCode::TooManyRequests.http_status();
    let unavailable = ErrorCode::Unavailable.http_status();
    match named {
        Some(seconds) if [too_many, unavailable].contains(&problem.status) => {
            problem.retry_after(seconds)
        }
        None if problem.status == too_many => {
            let in_details = problem.extra.get("retry_after").and_then(Value::as_u64);
            problem.retry_after(in_details.unwrap_or(1))
        }
        Some(_) | None => problem,
    }
}

#[utoipa::path(post, path = "/api/queries", tag = "queries", security(("bearer" = [])),
    request_body = AskBody,
    description = "Answers a question from the caller's own documents and emails with the local \
        model. With `Accept: text/event-stream` the answer streams as server-sent events: one \
        `started` (data: AskStarted), `delta` events (data: AskDelta) as the text is generated, \
        then `done` (data: the QueryRecord); a failure midway sends `error` (data: a problem) \
        and ends the stream. Closing the connection cancels the generation. Otherwise the \
        whole QueryRecord is answered as JSON.",
    responses(
        (status = 200, description = "the answer, whole or streamed",
            content((QueryRecord = "application/json"), (String = "text/event-stream"))),
        (status = 422, description = "an empty question, one over 1,000 characters, or another invalid field", body = Problem),
        (status = 429, description = "too many questions are waiting; retry after `Retry-After` seconds", body = Problem,
            headers(("Retry-After" = u64, description = "seconds to wait before retrying")))))]
pub async fn ask(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    Json(body): Json<AskBody>,
) -> ApiResult<Response> {
    let request = ask_request(body)?;
    let events = state
        .ask
        .clone()
        .ask(authorized(&auth.token, request))
        .await
        .map_err(ask_problem)?
        .into_inner();
    if wants_event_stream(&headers) {
        return Ok(event_stream(events));
    }
    let record = whole_answer(events).await?;
    Ok(axum::Json(record).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/queries", operation_id = "list_queries", tag = "queries", security(("bearer" = [])),
    params(ListParams), responses((status = 200, body = QueryPage)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<QueryPage>> {
    let limit = match params.limit {
        None => 0,
        Some(limit @ 1..=MAX_PAGE) => limit,
        Some(_) => {
            return Err(Problem::new(
                ErrorCode::BadRequest,
                format!("limit: must be between 1 and {MAX_PAGE}"),
            ));
        }
    };
    let page = state
        .queries
        .clone()
        .list_queries(authorized(
            &auth.token,
            pb::ListQueriesRequest {
                page: Some(pb::PageRequest {
                    limit,
                    cursor: params.cursor.unwrap_or_default(),
                }),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(QueryPage {
        queries: page.queries.into_iter().map(Into::into).collect(),
        next_cursor: Some(page.next_cursor).filter(|c| !c.is_empty()),
    }))
}

/// The id of one of the caller's queries: one that is not a UUID names
/// none, so it reads as not found (as a document's does).
fn query_id(id: &str) -> ApiResult<pb::QueryId> {
    let id =
        Uuid::parse_str(id).map_err(|_| Problem::new(ErrorCode::NotFound, "query not found"))?;
    Ok(pb::QueryId { id: id.to_string() })
}

#[utoipa::path(get, path = "/api/queries/{id}", operation_id = "get_query", tag = "queries", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = QueryRecord), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<QueryRecord>> {
    let record = state
        .queries
        .clone()
        .get_query(authorized(&auth.token, query_id(&id)?))
        .await?
        .into_inner();
    Ok(axum::Json(record.into()))
}

#[utoipa::path(delete, path = "/api/queries/{id}", operation_id = "delete_query", tag = "queries", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .queries
        .clone()
        .delete_query(authorized(&auth.token, query_id(&id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
