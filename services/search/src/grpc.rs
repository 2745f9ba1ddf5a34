//! tonic handlers: thin adapters from protobuf to [`SearchCore`].

use std::sync::{Arc, Weak};

use pai_common::UserContext;
use pai_proto::Timestamp;
use pai_proto::v1::search_internal_server::SearchInternal;
use pai_proto::v1::search_service_server::SearchService;
use pai_proto::v1::{self as pb, SearchMode};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::SearchError;
use crate::repo::Source;
use crate::service::{ChunkText, Mode, SearchCore};
use crate::text_index::{Filters, SOURCE_KINDS};

/// The most sources one search may be restricted to.
const MAX_SOURCE_IDS: usize = 100;

/// The handlers. They reach the core through a weak reference, and
/// [`crate::serve`] owns it: their routes are registered in the process's
/// [`pai_common::grpc::LocalServers`], which keeps them as long as any
/// in-process client of search lives, and in-process clients form cycles
/// (the core's embedder holds the inference service's routes, whose
/// answers hold a search client, which holds these routes). A core owned
/// here would outlive the service, every open index with it, still mapped
/// while a restarted service opens the same folder.
#[derive(Clone)]
pub struct Grpc {
    core: Weak<SearchCore>,
}

impl Grpc {
    pub fn new(core: &Arc<SearchCore>) -> Self {
        Self {
            core: Arc::downgrade(core),
        }
    }

    /// The core, while the service runs.
    fn core(&self) -> Result<Arc<SearchCore>, Status> {
        self.core
            .upgrade()
            .ok_or_else(|| Status::unavailable("the search service has stopped"))
    }
}

fn uuid(value: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| SearchError::Invalid(format!("{field}: not a UUID")).into())
}

fn kind(value: &str) -> Result<String, Status> {
    if SOURCE_KINDS.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(SearchError::Invalid(format!("source kind must be one of {SOURCE_KINDS:?}")).into())
    }
}

/// The sources a search is restricted to, each once; empty for all.
fn source_ids(values: &[String]) -> Result<Vec<Uuid>, SearchError> {
    if values.len() > MAX_SOURCE_IDS {
        return Err(SearchError::Invalid(format!(
            "source_ids: at most {MAX_SOURCE_IDS} sources, got {}",
            values.len()
        )));
    }
    let mut ids = values
        .iter()
        .enumerate()
        .map(|(n, value)| {
            Uuid::parse_str(value)
                .map_err(|_| SearchError::Invalid(format!("source_ids[{n}]: not a UUID")))
        })
        .collect::<Result<Vec<Uuid>, SearchError>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn optional(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

fn i32_of(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[tonic::async_trait]
impl SearchService for Grpc {
    #[tracing::instrument(skip_all)]
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let user = UserContext::from_request(&request)?;
        let req = request.into_inner();
        let mode = match SearchMode::try_from(req.mode).unwrap_or(SearchMode::Hybrid) {
            SearchMode::Hybrid => Mode::Hybrid,
            SearchMode::Bm25 => Mode::Bm25,
            SearchMode::Vector => Mode::Vector,
        };
        let filters = Filters {
            kind: optional(req.source_kind).map(|k| kind(&k)).transpose()?,
            category: optional(req.category),
            sources: source_ids(&req.source_ids)?,
        };
        let k = if req.k == 0 { 10 } else { req.k as usize };
        let (hits, took_ms) = self
            .core()?
            .search(user.user_id, &req.query, k, mode, filters)
            .await?;
        Ok(Response::new(pb::SearchResponse {
            hits: hits
                .into_iter()
                .map(|hit| pb::SearchHit {
                    source_kind: hit.chunk.source_kind,
                    source_id: hit.chunk.source_id.to_string(),
                    title: hit.chunk.title,
                    page: u32::try_from(hit.chunk.page).unwrap_or_default(),
                    ordinal: u32::try_from(hit.chunk.ordinal).unwrap_or_default(),
                    text: hit.chunk.text,
                    snippet: hit.snippet,
                    score: hit.score,
                    category: hit.chunk.category,
                    created_at: Some(Timestamp {
                        seconds: hit.chunk.created_at.timestamp(),
                        nanos: 0,
                    }),
                })
                .collect(),
            took_ms,
        }))
    }
}

/// One source of an index request, with its non-blank chunks.
fn source(user_id: Uuid, s: pb::SourceChunks) -> Result<(Source, Vec<ChunkText>), Status> {
    let source = Source {
        user_id,
        kind: kind(&s.source_kind)?,
        id: uuid(&s.source_id, "source_id")?,
        title: s.title,
        category: s.category,
    };
    let chunks = s
        .chunks
        .into_iter()
        .filter(|c| !c.text.trim().is_empty())
        .map(|c| ChunkText {
            ordinal: i32_of(c.ordinal),
            page: i32_of(c.page),
            start: i32_of(c.start),
            end: i32_of(c.end),
            text: c.text,
        })
        .collect();
    Ok((source, chunks))
}

#[tonic::async_trait]
impl SearchInternal for Grpc {
    async fn index_chunks(
        &self,
        request: Request<pb::IndexChunksRequest>,
    ) -> Result<Response<pb::IndexChunksResponse>, Status> {
        let req = request.into_inner();
        let source = source(
            uuid(&req.user_id, "user_id")?,
            pb::SourceChunks {
                source_kind: req.source_kind,
                source_id: req.source_id,
                title: req.title,
                category: req.category,
                chunks: req.chunks,
            },
        )?;
        let indexed = self.core()?.index_sources(vec![source]).await?;
        Ok(Response::new(pb::IndexChunksResponse {
            indexed: u32::try_from(indexed).unwrap_or(u32::MAX),
        }))
    }

    async fn index_sources(
        &self,
        request: Request<pb::IndexSourcesRequest>,
    ) -> Result<Response<pb::IndexChunksResponse>, Status> {
        let req = request.into_inner();
        let user_id = uuid(&req.user_id, "user_id")?;
        let sources = req
            .sources
            .into_iter()
            .map(|s| source(user_id, s))
            .collect::<Result<Vec<_>, Status>>()?;
        let indexed = self.core()?.index_sources(sources).await?;
        Ok(Response::new(pb::IndexChunksResponse {
            indexed: u32::try_from(indexed).unwrap_or(u32::MAX),
        }))
    }

    async fn delete_source(
        &self,
        request: Request<pb::DeleteSourceRequest>,
    ) -> Result<Response<pb::DeleteSourceResponse>, Status> {
        let req = request.into_inner();
        let mut sources = vec![uuid(&req.source_id, "source_id")?];
        for id in &req.more_source_ids {
            sources.push(uuid(id, "more_source_ids")?);
        }
        let deleted = self
            .core()?
            .delete_sources(
                uuid(&req.user_id, "user_id")?,
                &kind(&req.source_kind)?,
                sources,
            )
            .await?;
        Ok(Response::new(pb::DeleteSourceResponse {
            deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteSourceResponse>, Status> {
        let user_id = uuid(&request.get_ref().user_id, "user_id")?;
        let deleted = self.core()?.delete_user(user_id).await?;
        Ok(Response::new(pb::DeleteSourceResponse {
            deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
        }))
    }

    async fn rebuild(
        &self,
        _request: Request<pb::RebuildRequest>,
    ) -> Result<Response<pb::RebuildResponse>, Status> {
        let chunks = self.core()?.rebuild().await?;
        Ok(Response::new(pb::RebuildResponse { chunks }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_uuids_at_most_a_hundred() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut ids = source_ids(&[b.to_string(), a.to_string(), b.to_string()]).unwrap();
        ids.sort_unstable();
        let mut expected = vec![a, b];
        expected.sort_unstable();
        assert_eq!(ids, expected, "each once");
        assert!(source_ids(&[]).unwrap().is_empty());

        let status = Status::from(source_ids(&[a.to_string(), "not-a-uuid".into()]).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "source_ids[1]: not a UUID");

        let many: Vec<String> = (0..=MAX_SOURCE_IDS)
            .map(|_| Uuid::new_v4().to_string())
            .collect();
        let status = Status::from(source_ids(&many).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("at most 100"), "{status:?}");
        assert_eq!(source_ids(&many[..MAX_SOURCE_IDS]).unwrap().len(), 100);
    }
}
