//! tonic handlers: thin adapters from protobuf to the [`Batcher`] and the
//! [`AskCore`].

use std::sync::{Arc, Weak};

use pai_common::UserContext;
use pai_proto::v1::ask_service_server::AskService;
use pai_proto::v1::{self as pb, embed_request, inference_internal_server::InferenceInternal};
use sqlx::PgPool;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::ask::{AskCore, record};
use crate::batcher::{Batcher, Priority};
use crate::repo;

#[derive(Clone)]
pub struct Grpc {
    pub batcher: Arc<Batcher>,
    /// The query history's pool, where this process answers questions.
    pub history: Option<PgPool>,
}

/// Maps the wire priority; unspecified (and unknown) values count as interactive.
fn priority(raw: i32) -> Priority {
    match embed_request::Priority::try_from(raw) {
        Ok(embed_request::Priority::Bulk) => Priority::Bulk,
        Ok(embed_request::Priority::Interactive | embed_request::Priority::Unspecified)
        | Err(_) => Priority::Interactive,
    }
}

#[tonic::async_trait]
impl InferenceInternal for Grpc {
    #[tracing::instrument(skip_all, fields(texts = request.get_ref().texts.len(), priority = request.get_ref().priority))]
    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let request = request.into_inner();
        let priority = priority(request.priority);
        let vectors = self.batcher.embed(request.texts, priority).await?;
        let embedder = self.batcher.embedder();
        Ok(Response::new(pb::EmbedResponse {
            embeddings: vectors
                .into_iter()
                .map(|values| pb::Embedding { values })
                .collect(),
            model: embedder.name().to_owned(),
            dimensions: u32::try_from(embedder.dimensions()).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(skip_all, fields(queries = request.get_ref().queries.len()))]
    async fn import_queries(
        &self,
        request: Request<pb::ImportQueriesRequest>,
    ) -> Result<Response<pb::ImportQueriesResponse>, Status> {
        let Some(pool) = &self.history else {
            return Err(Status::unavailable(
                "this inference process keeps no query history (it runs without Ask)",
            ));
        };
        let queries = request
            .into_inner()
            .queries
            .into_iter()
            .map(imported_query)
            .collect::<Result<Vec<_>, Status>>()?;
        let created = repo::insert_imported(pool, &queries).await?;
        Ok(Response::new(pb::ImportQueriesResponse { created }))
    }
}

fn uuid_field(value: &str, name: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| Status::invalid_argument(format!("{name}: not a UUID")))
}

fn imported_query(query: pb::ImportedQuery) -> Result<repo::ImportedQuery, Status> {
    if query.query.trim().is_empty() {
        return Err(Status::invalid_argument("query: empty"));
    }
    Ok(repo::ImportedQuery {
        id: uuid_field(&query.id, "id")?,
        user_id: uuid_field(&query.user_id, "user_id")?,
        query: query.query,
        response: query.response,
        sources: query
            .sources
            .into_iter()
            .map(|source| repo::StoredSource {
                n: source.n,
                source_kind: source.source_kind,
                source_id: source.source_id,
                title: source.title,
                page: source.page,
                snippet: source.snippet,
                score: source.score,
                cited: source.cited,
            })
            .collect(),
        created_at: pai_common::time::from_proto(query.created_at).unwrap_or_else(chrono::Utc::now),
    })
}

/// The `AskService` handlers. They hold the core weakly: in one process the
/// handlers stay registered for in-process callers after the service
/// stops, and the core's search client leads back to them, so a strong
/// reference would keep the model, its thread and the pool alive forever.
#[derive(Clone)]
pub struct Ask {
    core: Weak<AskCore>,
}

impl Ask {
    pub fn new(core: &Arc<AskCore>) -> Self {
        Self {
            core: Arc::downgrade(core),
        }
    }

    fn core(&self) -> Result<Arc<AskCore>, Status> {
        self.core
            .upgrade()
            .ok_or_else(|| Status::unavailable("the inference service has stopped"))
    }
}

#[tonic::async_trait]
impl AskService for Ask {
    type AskStream = ReceiverStream<Result<pb::AskEvent, Status>>;

    #[tracing::instrument(skip_all, fields(chars = request.get_ref().query.chars().count()))]
    async fn ask(
        &self,
        request: Request<pb::AskRequest>,
    ) -> Result<Response<Self::AskStream>, Status> {
        let user = UserContext::from_request(&request)?;
        // Search is asked with the caller's own token (already verified).
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(pai_common::identity::bearer_token)
            .map(str::to_owned)
            .ok_or_else(|| Status::unauthenticated("missing access token"))?;
        let stream = self.core()?.ask(user, &token, request.into_inner()).await?;
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn list_queries(
        &self,
        request: Request<pb::ListQueriesRequest>,
    ) -> Result<Response<pb::ListQueriesResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let page = request.into_inner().page.unwrap_or_default();
        let (rows, next_cursor) = self.core()?.list(user.user_id, page).await?;
        Ok(Response::new(pb::ListQueriesResponse {
            queries: rows.iter().map(record).collect(),
            next_cursor,
        }))
    }

    async fn get_query(
        &self,
        request: Request<pb::QueryId>,
    ) -> Result<Response<pb::QueryRecord>, Status> {
        let user = UserContext::from_request(&request)?;
        let row = self
            .core()?
            .get(user.user_id, &request.into_inner().id)
            .await?;
        Ok(Response::new(record(&row)))
    }

    async fn delete_query(
        &self,
        request: Request<pb::QueryId>,
    ) -> Result<Response<pb::DeleteQueryResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        self.core()?
            .delete(user.user_id, &request.into_inner().id)
            .await?;
        Ok(Response::new(pb::DeleteQueryResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bulk_is_bulk() {
        assert_eq!(
            priority(embed_request::Priority::Bulk as i32),
            Priority::Bulk
        );
        assert_eq!(priority(0), Priority::Interactive);
        assert_eq!(priority(1), Priority::Interactive);
        assert_eq!(priority(99), Priority::Interactive);
    }
}
