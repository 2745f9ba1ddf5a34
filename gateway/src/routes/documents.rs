//! `/api/documents*`: upload (streamed to the documents service), list,
//! get, download, delete, reprocess.

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use pai_common::ErrorCode;
use pai_proto::v1::upload_request::Part;
use pai_proto::v1::{self as pb};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{Document, DocumentPage};
use crate::extract::AuthUser;
use crate::problem::{ApiResult, Problem};
use crate::state::{AppState, authorized};

/// Bytes per gRPC message of an upload.
const UPLOAD_CHUNK: usize = 256 * 1024;

fn multipart_problem(err: &axum::extract::multipart::MultipartError) -> Problem {
    match err.status().as_u16() {
        413 => Problem::new(
            ErrorCode::PayloadTooLarge,
            "the file is larger than the upload limit",
        ),
        _ => Problem::new(
            ErrorCode::BadRequest,
            format!("invalid multipart body: {}", err.body_text()),
        ),
    }
}

#[utoipa::path(post, path = "/api/documents", tag = "documents", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "a `file` field holding a PDF"),
    responses((status = 202, body = Document), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    mut multipart: Multipart,
) -> ApiResult<(StatusCode, axum::Json<Document>)> {
    let mut field = loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => break field,
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Problem::new(
                    ErrorCode::BadRequest,
                    "the form has no `file` field",
                ));
            }
            Err(err) => return Err(multipart_problem(&err)),
        }
    };
    let filename = field.file_name().unwrap_or("document.pdf").to_owned();
    let content_type = field.content_type().unwrap_or_default().to_owned();
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::UploadRequest>(4);
    let mut client = state.documents.clone();
    let call = client.upload(authorized(
        &auth.token,
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    // Feed the file to the service while it receives: never the whole file
    // in memory or in one message.
    let feed = async move {
        let metadata = pb::UploadRequest {
            part: Some(Part::Metadata(pb::UploadMetadata {
                filename,
                content_type,
                title: String::new(),
                imported: None,
            })),
        };
        if tx.send(metadata).await.is_err() {
            return Ok(());
        }
        let mut sent: u64 = 0;
        loop {
            match field.chunk().await {
                Ok(Some(bytes)) => {
                    sent += bytes.len() as u64;
                    for piece in bytes.chunks(UPLOAD_CHUNK) {
                        let message = pb::UploadRequest {
                            part: Some(Part::Data(piece.to_vec())),
                        };
                        // The service stopped listening: its answer says why.
                        if tx.send(message).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                // Only a part that ended cleanly is marked complete; a body
                // that broke off ends the stream without the marker, and the
                // service records nothing.
                Ok(None) => {
                    let end = pb::UploadRequest {
                        part: Some(Part::End(pb::UploadEnd { bytes: sent })),
                    };
                    let _ = tx.send(end).await;
                    return Ok(());
                }
                Err(err) => return Err(multipart_problem(&err)),
            }
        }
    };
    let (answer, fed) = tokio::join!(call, feed);
    // A broken body is the client's error, whatever the service answered.
    fed?;
    let document = answer?.into_inner();
    Ok((StatusCode::ACCEPTED, axum::Json(document.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// `financial`, `long_form` or `generic`.
    pub category: Option<String>,
    /// `queued`, `processing`, `indexed` or `failed`.
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/documents", operation_id = "list_documents", tag = "documents", security(("bearer" = [])),
    params(ListParams), responses((status = 200, body = DocumentPage)))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<DocumentPage>> {
    let page = state
        .documents
        .clone()
        .list(authorized(
            &auth.token,
            pb::ListDocumentsRequest {
                page: Some(pb::PageRequest {
                    limit: params.limit.unwrap_or(0),
                    cursor: params.cursor.unwrap_or_default(),
                }),
                category: params.category.unwrap_or_default(),
                status: params.status.unwrap_or_default(),
            },
        ))
        .await?
        .into_inner();
    Ok(axum::Json(DocumentPage {
        documents: page.documents.into_iter().map(Into::into).collect(),
        next_cursor: Some(page.next_cursor).filter(|c| !c.is_empty()),
    }))
}

#[utoipa::path(get, path = "/api/documents/{id}", operation_id = "get_document", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Document), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Document>> {
    let document = state
        .documents
        .clone()
        .get(authorized(&auth.token, pb::DocumentRef { id }))
        .await?
        .into_inner();
    Ok(axum::Json(document.into()))
}

#[utoipa::path(get, path = "/api/documents/{id}/file", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "application/pdf"), (status = 404, body = Problem)))]
pub async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let mut stream = state
        .documents
        .clone()
        .download(authorized(&auth.token, pb::DocumentRef { id }))
        .await?
        .into_inner();
    // The first message carries the name and size, or the error.
    let first = stream
        .message()
        .await?
        .ok_or_else(|| Problem::new(ErrorCode::Internal, "the file could not be read"))?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        first.filename.replace(['"', '\\', '\r', '\n'], "_")
    );
    let rest = stream.map(|chunk| chunk.map(|c| c.data));
    let body = futures::stream::once(async move { Ok(first.data) }).chain(rest);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[utoipa::path(delete, path = "/api/documents/{id}", operation_id = "delete_document", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .documents
        .clone()
        .delete(authorized(&auth.token, pb::DocumentRef { id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/documents/{id}/reprocess", tag = "documents", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 202, body = Document), (status = 404, body = Problem)))]
pub async fn reprocess(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Document>)> {
    let document = state
        .documents
        .clone()
        .reprocess(authorized(&auth.token, pb::DocumentRef { id }))
        .await?
        .into_inner();
    Ok((StatusCode::ACCEPTED, axum::Json(document.into())))
}
