//! pai's inference service, embedding half: all-MiniLM-L6-v2 run in process
//! (pai's int8 encoder, or candle's), with concurrent `Embed` calls batched
//! onto one worker thread per forward pass the model runs at once and
//! interactive (search) requests served before bulk (ingest) ones.

pub mod batcher;
pub mod embedder;
pub mod error;
mod grpc;
mod int8_bert;
mod quantized_bert;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pai_common::config::{Env, JwtSettings};
use pai_common::grpc::LocalServers;
use pai_common::identity::{JwtKeys, RequireService};
use pai_common::{ConfigError, grpc as grpc_util};
use pai_int8::KERNEL_VAR;
use pai_proto::v1::inference_internal_server::InferenceInternalServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use crate::batcher::{BatchSizes, Batcher, Priority};
pub use crate::embedder::{Embedder, MAX_BATCH, MAX_TOKENS, Precision};
pub use crate::error::{InferenceError, Result};
/// The int8 encoder's kernels, named by `PAI_INT8_KERNEL`.
pub use pai_int8::Kernel;

/// The most texts one `Embed` call may carry.
pub const MAX_TEXTS_PER_REQUEST: usize = 256;
/// The model folder when `EMBEDDING_MODEL_PATH` is not set (the Makefile sets
/// it to where `make models` installs: `$PAI_MODELS_DIR/all-minilm-l6-v2`).
pub const DEFAULT_EMBEDDING_MODEL_PATH: &str = "data/models/all-minilm-l6-v2";
/// Requests may carry 256 texts of up to 32 KiB each.
const MAX_REQUEST_BYTES: usize = 9 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct InferenceSettings {
    pub jwt: JwtSettings,
    /// A folder with model.safetensors, config.json and tokenizer.json.
    pub embedding_model_path: PathBuf,
    /// `EMBEDDING_PRECISION`: `int8` (the default on CPUs with AVX-512
    /// VNNI or AMX), `q8` (the default elsewhere) or `f32`.
    pub precision: Precision,
    /// `PAI_INT8_KERNEL`: the int8 encoder's kernel, by default the
    /// fastest this CPU runs.
    pub int8_kernel: Kernel,
    pub batch_sizes: BatchSizes,
}

impl InferenceSettings {
    /// Reads the settings; a model folder without the model is an error
    /// naming `EMBEDDING_MODEL_PATH`, before anything binds.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let path = PathBuf::from(env.string("EMBEDDING_MODEL_PATH", DEFAULT_EMBEDDING_MODEL_PATH));
        if let Some(missing) = embedder::missing_model_file(&path) {
            return Err(ConfigError::new(
                "EMBEDDING_MODEL_PATH",
                format!(
                    "{} not found; install the default model with `make models`",
                    missing.display()
                ),
            ));
        }
        let defaults = BatchSizes::default();
        let bulk = env.parse("EMBEDDING_BULK_BATCH", defaults.bulk)?;
        if !(1..=MAX_BATCH).contains(&bulk) {
            return Err(ConfigError::new(
                "EMBEDDING_BULK_BATCH",
                format!("must be between 1 and {MAX_BATCH}"),
            ));
        }
        let int8_kernel = Kernel::choose(env.get(KERNEL_VAR), &Kernel::available())
            .map_err(|err| ConfigError::new(KERNEL_VAR, err))?;
        Ok(Self {
            jwt: JwtSettings::from_env(env)?,
            embedding_model_path: path,
            precision: env.parse("EMBEDDING_PRECISION", Precision::default())?,
            int8_kernel,
            batch_sizes: BatchSizes { bulk, ..defaults },
        })
    }
}

/// Loads the embedding model off the async workers (it reads ~90 MB).
pub async fn load_embedder(settings: &InferenceSettings) -> anyhow::Result<Arc<Embedder>> {
    let path = settings.embedding_model_path.clone();
    let (precision, kernel) = (settings.precision, settings.int8_kernel);
    let embedder =
        tokio::task::spawn_blocking(move || Embedder::load_with_kernel(&path, precision, kernel))
            .await
            .context("embedding model loader")?
            .context("loading the embedding model")?;
    Ok(Arc::new(embedder))
}

/// Serves `InferenceInternal` (service credentials only) and tonic-health on
/// `listener` until `shutdown` is cancelled; health reports serving once the
/// model is loaded.
/// Co-located services call it through `local`.
pub async fn serve(
    settings: InferenceSettings,
    listener: TcpListener,
    shutdown: CancellationToken,
    local: LocalServers,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let embedder = load_embedder(&settings).await?;
    let batcher = Batcher::start(embedder, settings.batch_sizes).context("embedding worker")?;
    let handlers = grpc::Grpc {
        batcher: Arc::new(batcher),
    };
    let keys = Arc::new(JwtKeys::new(&settings.jwt));
    health
        .set_serving::<InferenceInternalServer<grpc::Grpc>>()
        .await;
    tracing::info!(model = %settings.embedding_model_path.display(), "embedding model loaded");
    let inference =
        InferenceInternalServer::new(handlers).max_decoding_message_size(MAX_REQUEST_BYTES);
    let routes = Routes::new(tonic::service::interceptor::InterceptedService::new(
        inference,
        RequireService::new(keys),
    ));
    grpc_util::serve(
        "inference",
        routes.add_service(health_service),
        listener,
        &local,
        shutdown,
    )
    .await
}
