//! Integration tests against the real all-MiniLM-L6-v2 model (`make models`).
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod batcher;
mod embedder;
mod grpc;
mod reference;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pai_inference::Embedder;

/// Returns the model folder: `EMBEDDING_MODEL_PATH`, else where `make models`
/// installs it.
pub fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("EMBEDDING_MODEL_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/pai/models/all-minilm-l6-v2")
}

/// Returns the model, loaded once for the whole test binary (read-only).
pub fn embedder() -> Arc<Embedder> {
    static EMBEDDER: OnceLock<Arc<Embedder>> = OnceLock::new();
    Arc::clone(EMBEDDER.get_or_init(|| {
        let path = model_path();
        Arc::new(
            Embedder::load(&path).unwrap_or_else(|err| {
                panic!("{err}: run `make models` (or set EMBEDDING_MODEL_PATH)")
            }),
        )
    }))
}

/// A sentence of meeting minutes: ingest-like text, repeated to make long
/// chunks for the bulk queue.
pub const MINUTES: &str = "The committee reviewed the annual budget, the staffing plan and \
                           the schedule for the new building, and asked for a revised \
                           estimate of the costs before the next meeting in the spring. ";

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}
