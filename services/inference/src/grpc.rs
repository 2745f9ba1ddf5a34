//! tonic handlers: thin adapters from protobuf to the [`Batcher`].

use std::sync::Arc;

use pai_proto::v1::{self as pb, embed_request, inference_internal_server::InferenceInternal};
use tonic::{Request, Response, Status};

use crate::batcher::{Batcher, Priority};

#[derive(Clone)]
pub struct Grpc {
    pub batcher: Arc<Batcher>,
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
