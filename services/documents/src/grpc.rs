//! tonic handlers: thin adapters from protobuf to [`DocumentsCore`].

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::Stream;
use pai_common::UserContext;
use pai_proto::v1::document_service_server::DocumentService;
use pai_proto::v1::upload_request::Part;
use pai_proto::v1::{self as pb};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::blob::Incoming;
use crate::error::DocumentsError;
use crate::repo::{self, DocumentRow};
use crate::service::DocumentsCore;

const DOWNLOAD_CHUNK: usize = 64 * 1024;
const STATUSES: [&str; 4] = ["queued", "processing", "indexed", "failed"];
const CATEGORIES: [&str; 3] = ["financial", "long_form", "generic"];

#[derive(Clone)]
pub struct Grpc {
    pub core: Arc<DocumentsCore>,
}

use pai_common::time::to_proto as timestamp;

pub fn to_proto(row: &DocumentRow) -> pb::Document {
    pb::Document {
        id: row.id.to_string(),
        title: row.title.clone(),
        filename: row.filename.clone(),
        category: row.category.clone(),
        status: row.status.clone(),
        error: row.error.clone().unwrap_or_default(),
        pages: u32::try_from(row.pages).unwrap_or_default(),
        chunks: u32::try_from(row.chunks).unwrap_or_default(),
        bytes: u64::try_from(row.bytes).unwrap_or_default(),
        sha256: row.sha256.clone(),
        created_at: timestamp(row.created_at),
        updated_at: timestamp(row.updated_at),
    }
}

/// Another user's document answers exactly like a missing one.
fn document_id(value: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| DocumentsError::NotFound.into())
}

fn filter(value: String, allowed: &[&str], name: &str) -> Result<Option<String>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    if allowed.contains(&value.as_str()) {
        Ok(Some(value))
    } else {
        Err(DocumentsError::Invalid(format!("{name}: must be one of {allowed:?}")).into())
    }
}

/// An older install's document, as `pai import-sqlite` uploads it.
fn imported(doc: &pb::ImportedDocument) -> Result<(Uuid, repo::Imported), Status> {
    let id = Uuid::parse_str(&doc.id)
        .map_err(|_| DocumentsError::Invalid("imported id: not a UUID".into()))?;
    let metadata: serde_json::Value = if doc.metadata_json.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(&doc.metadata_json)
            .map_err(|err| DocumentsError::Invalid(format!("imported metadata: {err}")))?
    };
    if !metadata.is_object() {
        return Err(DocumentsError::Invalid("imported metadata: not a JSON object".into()).into());
    }
    let created_at = pai_common::time::from_proto(doc.created_at).unwrap_or_else(Utc::now);
    Ok((
        id,
        repo::Imported {
            created_at,
            updated_at: pai_common::time::from_proto(doc.updated_at).unwrap_or(created_at),
            metadata,
            namespace: if doc.namespace.trim().is_empty() {
                "default".to_owned()
            } else {
                doc.namespace.trim().chars().take(100).collect()
            },
        },
    ))
}

fn parse_cursor(cursor: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, Status> {
    pai_common::page::parse_cursor(cursor)
        .map_err(|err| DocumentsError::Invalid(err.to_string()).into())
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<pb::DownloadChunk, Status>> + Send>>;

#[tonic::async_trait]
impl DocumentService for Grpc {
    #[tracing::instrument(skip_all)]
    async fn upload(
        &self,
        request: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::Document>, Status> {
        let user = UserContext::from_request(&request)?;
        let mut stream = request.into_inner();
        let metadata = match stream.message().await? {
            Some(pb::UploadRequest {
                part: Some(Part::Metadata(metadata)),
            }) => metadata,
            _ => {
                return Err(DocumentsError::Invalid(
                    "the first upload message must carry the metadata".into(),
                )
                .into());
            }
        };
        let imported = match metadata.imported.as_ref().map(imported).transpose()? {
            Some((id, imported)) => {
                // Already brought in by an earlier, cut-off import.
                if let Ok(row) = self.core.get(user.user_id, id).await {
                    return Ok(Response::new(to_proto(&row)));
                }
                Some((id, imported))
            }
            None => None,
        };
        let (id, mut incoming) = self
            .core
            .begin_upload(user.user_id, imported.as_ref().map(|(id, _)| *id))
            .await?;
        if let Err(status) = receive(&mut stream, &mut incoming).await {
            incoming.abort().await;
            return Err(status);
        }
        let row = self
            .core
            .finish_upload(
                user.user_id,
                id,
                &metadata.filename,
                &metadata.title,
                imported.as_ref().map(|(_, imported)| imported),
                incoming,
            )
            .await?;
        Ok(Response::new(to_proto(&row)))
    }

    async fn list(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let limit = if page.limit == 0 {
            50
        } else {
            page.limit.min(200)
        };
        let category = filter(req.category, &CATEGORIES, "category")?;
        let status = filter(req.status, &STATUSES, "status")?;
        let rows = self
            .core
            .list(
                user.user_id,
                category.as_deref(),
                status.as_deref(),
                parse_cursor(&page.cursor)?,
                limit,
            )
            .await?;
        let next_cursor = if rows.len() == limit as usize {
            rows.last()
                .map(|r| pai_common::page::cursor(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListDocumentsResponse {
            documents: rows.iter().map(to_proto).collect(),
            next_cursor,
        }))
    }

    async fn get(
        &self,
        request: Request<pb::DocumentRef>,
    ) -> Result<Response<pb::Document>, Status> {
        let user = UserContext::from_request(&request)?;
        let id = document_id(&request.get_ref().id)?;
        let row = self.core.get(user.user_id, id).await?;
        Ok(Response::new(to_proto(&row)))
    }

    type DownloadStream = DownloadStream;

    async fn download(
        &self,
        request: Request<pb::DocumentRef>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let user = UserContext::from_request(&request)?;
        let id = document_id(&request.get_ref().id)?;
        let (row, path) = self.core.file(user.user_id, id).await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(DocumentsError::from)?;
        let size = u64::try_from(row.bytes).unwrap_or_default();
        let stream = async_stream(move |tx| async move {
            let mut first = true;
            let mut buffer = vec![0u8; DOWNLOAD_CHUNK];
            loop {
                let read = match file.read(&mut buffer).await {
                    Ok(0) => return,
                    Ok(read) => read,
                    Err(err) => {
                        let _ = tx.send(Err(DocumentsError::from(err).into())).await;
                        return;
                    }
                };
                let chunk = pb::DownloadChunk {
                    data: buffer[..read].to_vec(),
                    filename: if first {
                        row.filename.clone()
                    } else {
                        String::new()
                    },
                    size: if first { size } else { 0 },
                };
                first = false;
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn delete(
        &self,
        request: Request<pb::DocumentRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let user = UserContext::from_request(&request)?;
        let id = document_id(&request.get_ref().id)?;
        self.core.delete(user.user_id, id).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn reprocess(
        &self,
        request: Request<pb::DocumentRef>,
    ) -> Result<Response<pb::Document>, Status> {
        let user = UserContext::from_request(&request)?;
        let id = document_id(&request.get_ref().id)?;
        let row = self.core.reprocess(user.user_id, id).await?;
        Ok(Response::new(to_proto(&row)))
    }
}

/// Writes the upload's bytes up to its end marker. A stream that ends
/// without the marker (the client's body broke off), or whose marker counts
/// other bytes than arrived, is refused: only a complete file is recorded.
async fn receive(
    stream: &mut Streaming<pb::UploadRequest>,
    incoming: &mut Incoming,
) -> Result<(), Status> {
    loop {
        let part = match stream.message().await? {
            Some(message) => message.part,
            None => {
                return Err(DocumentsError::Invalid(
                    "the upload ended before its end marker: the file is incomplete".into(),
                )
                .into());
            }
        };
        match part {
            Some(Part::Data(data)) => incoming.write(&data).await?,
            Some(Part::End(end)) if end.bytes == incoming.bytes() => return Ok(()),
            Some(Part::End(end)) => {
                return Err(DocumentsError::Invalid(format!(
                    "the upload's end marker counts {} bytes but {} arrived",
                    end.bytes,
                    incoming.bytes()
                ))
                .into());
            }
            Some(Part::Metadata(_)) | None => {
                return Err(DocumentsError::Invalid(
                    "after the metadata, an upload sends only data and its end marker".into(),
                )
                .into());
            }
        }
    }
}

/// A stream fed by a task through a small channel (backpressure included).
fn async_stream<F, Fut>(produce: F) -> DownloadStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::DownloadChunk, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(produce(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
