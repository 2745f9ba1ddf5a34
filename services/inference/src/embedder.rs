//! all-MiniLM-L6-v2 sentence embeddings, on pai's int8 encoder or candle's.
//!
//! The package's `tokenizer.json` pads every input to 128 tokens; here texts
//! are tokenized unpadded and sorted by length; the int8 encoder takes each
//! batch unpadded, and candle's get it padded only to its own longest text
//! (padded to 128, half the time went to padding). Vectors are the mean of
//! the token states under the attention mask, L2-normalised, as
//! sentence-transformers computes them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use pai_int8::Kernel;
use tokenizers::utils::padding::{PaddingParams, PaddingStrategy, pad_encodings};
use tokenizers::utils::truncation::TruncationParams;
use tokenizers::{Encoding, Tokenizer};

use crate::error::{InferenceError, Result};
use crate::int8_bert::Int8Bert;
use crate::quantized_bert::QuantizedBert;

/// The files a model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];
/// The longest input the model sees, in tokens (the model was trained with 256).
pub const MAX_TOKENS: usize = 256;
/// The most texts one forward pass takes.
pub const MAX_BATCH: usize = 32;
/// Texts are cut to this many bytes before tokenizing, which bounds the work
/// a huge text costs; 256 tokens never need more.
const MAX_TEXT_BYTES: usize = 32 * 1024;

/// How the model's dense layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 8-bit integer weights and activations on pai's own encoder
    /// (`int8_bert`): one thread per forward pass, on AMX, AVX-512 VNNI or
    /// AVX2 where the CPU has them. The default on such CPUs; cosine ≥ 0.99
    /// to `F32`.
    Int8,
    /// 8-bit weights (Q8_0) on candle's quantized kernels, each forward pass
    /// spread over every core: the default on CPUs without AVX2.
    Q8,
    /// The checkpoint's f32 weights on candle's BERT, as trained.
    F32,
}

impl Default for Precision {
    /// Returns the fastest precision this CPU runs (`int8` on its fastest
    /// kernel, whatever kernel `PAI_INT8_KERNEL` forces).
    fn default() -> Self {
        match Kernel::fastest() {
            Kernel::Amx | Kernel::Vnni | Kernel::Avx2 => Self::Int8,
            Kernel::Portable => Self::Q8,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "int8" => Ok(Self::Int8),
            "q8" | "q8_0" => Ok(Self::Q8),
            "f32" => Ok(Self::F32),
            other => Err(format!("expected int8, q8 or f32, got {other:?}")),
        }
    }
}

enum Model {
    F32(BertModel),
    Q8(QuantizedBert),
    Int8(Int8Bert),
}

/// A loaded embedding model: BERT weights plus its tokenizer.
pub struct Embedder {
    model: Model,
    tokenizer: Tokenizer,
    padding: PaddingParams,
    device: Device,
    name: String,
    dimensions: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

/// Returns the first of [`MODEL_FILES`] missing from `dir`, if any.
pub fn missing_model_file(dir: &Path) -> Option<PathBuf> {
    MODEL_FILES
        .iter()
        .map(|file| dir.join(file))
        .find(|path| !path.is_file())
}

impl Embedder {
    /// Loads the model in `dir` (model.safetensors, config.json,
    /// tokenizer.json) with 8-bit dense layers.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, Precision::default())
    }

    /// Loads the model in `dir` computing at `precision`, the int8 encoder
    /// on [`Kernel::detect`]'s kernel.
    pub fn load_with(dir: &Path, precision: Precision) -> Result<Self> {
        Self::load_with_kernel(dir, precision, Kernel::detect())
    }

    /// Loads the model in `dir` computing at `precision`, the int8 encoder
    /// on `kernel` (an error if this CPU does not run it; q8 and f32 ignore
    /// it).
    pub fn load_with_kernel(dir: &Path, precision: Precision, kernel: Kernel) -> Result<Self> {
        let load_error = |reason: String| InferenceError::Load {
            path: dir.display().to_string(),
            reason,
        };
        if let Some(missing) = missing_model_file(dir) {
            return Err(load_error(format!("{} is missing", missing.display())));
        }
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|err| load_error(format!("config.json: {err}")))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|err| load_error(format!("config.json: {err}")))?;
        // Read into memory: the mmap loader needs `unsafe`, which pai forbids.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|err| load_error(format!("model.safetensors: {err}")))?;
        let device = Device::Cpu;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|err| load_error(format!("model.safetensors: {err}")))?;
        let model = match precision {
            Precision::F32 => BertModel::load(vars, &config)
                .map(Model::F32)
                .map_err(InferenceError::from),
            Precision::Q8 => QuantizedBert::load(&vars, &config)
                .map(Model::Q8)
                .map_err(InferenceError::from),
            Precision::Int8 => Int8Bert::load(&vars, &config, kernel).map(Model::Int8),
        }
        .map_err(|err| load_error(format!("model.safetensors: {err}")))?;

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|err| load_error(format!("tokenizer.json: {err}")))?;
        let mut padding = tokenizer.get_padding().cloned().unwrap_or_default();
        padding.strategy = PaddingStrategy::BatchLongest;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|err| load_error(format!("tokenizer.json: {err}")))?;

        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "embedding-model".to_owned());
        Ok(Self {
            model,
            tokenizer,
            padding,
            device,
            name,
            dimensions: config.hidden_size,
        })
    }

    /// Returns the model's name (its folder's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns how many forward passes may run at once: one per core for
    /// the int8 encoder, which keeps each pass on its thread; for candle's,
    /// one when it spreads each pass over every core itself, else (with
    /// `RAYON_NUM_THREADS=1`) one per core too.
    pub fn parallel_passes(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match self.model {
            Model::Int8(_) => cores,
            Model::Q8(_) | Model::F32(_) if candle_core::utils::get_num_threads() == 1 => cores,
            Model::Q8(_) | Model::F32(_) => 1,
        }
    }

    /// Returns the length of every embedding.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Tokenizes `texts` unpadded, truncated to [`MAX_TOKENS`].
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        let inputs: Vec<&str> = texts.iter().map(|text| cut(text)).collect();
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|err| InferenceError::Tokenizer(err.to_string()))
    }

    /// Returns how many tokens the model sees for `texts` (for benchmarks).
    pub fn count_tokens(&self, texts: &[&str]) -> Result<usize> {
        Ok(self.tokenize(texts)?.iter().map(Encoding::len).sum())
    }

    /// Returns one unit-length embedding per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_pausing(texts, &mut || {})
    }

    /// Like [`Embedder::embed`], calling `pause` between the steps
    /// of the 8-bit model (attention, feed-forward, six layers): the batcher
    /// answers waiting search queries there, so a query never waits for a
    /// whole bulk forward pass.
    pub fn embed_pausing(&self, texts: &[&str], pause: &mut dyn FnMut()) -> Result<Vec<Vec<f32>>> {
        let encodings = self.tokenize(texts)?;
        let tokens: usize = encodings.iter().map(Encoding::len).sum();
        metrics::counter!("pai_inference_embedded_tokens_total").increment(tokens as u64);
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&index| encodings[index].len());

        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encodings.len()];
        let mut encodings: Vec<Option<Encoding>> = encodings.into_iter().map(Some).collect();
        for chunk in order.chunks(MAX_BATCH) {
            let batch: Vec<Encoding> = chunk
                .iter()
                .filter_map(|&index| encodings[index].take())
                .collect();
            for (&index, vector) in chunk.iter().zip(self.forward(batch, pause)?) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }

    /// Runs one batch through the model: mean pooling, then L2 norm. The
    /// int8 encoder takes the texts unpadded; candle's take them padded.
    fn forward(&self, batch: Vec<Encoding>, pause: &mut dyn FnMut()) -> Result<Vec<Vec<f32>>> {
        match &self.model {
            Model::Int8(model) => {
                let texts: Vec<&[u32]> = batch.iter().map(Encoding::get_ids).collect();
                model.embed(&texts, pause)
            }
            Model::F32(model) => self.pooled(batch, |ids, mask| {
                model.forward(ids, &ids.zeros_like()?, Some(mask))
            }),
            Model::Q8(model) => self.pooled(batch, |ids, mask| model.forward(ids, mask, pause)),
        }
    }

    /// Pads one batch to its longest text, runs it through a candle model
    /// (`run` maps token ids and the attention mask to the last hidden
    /// states) and pools it.
    fn pooled(
        &self,
        mut batch: Vec<Encoding>,
        run: impl FnOnce(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Vec<Vec<f32>>> {
        pad_encodings(&mut batch, &self.padding)
            .map_err(|err| InferenceError::Tokenizer(err.to_string()))?;
        let Some(first) = batch.first() else {
            return Ok(Vec::new());
        };
        let (rows, columns) = (batch.len(), first.len());
        let mut ids = Vec::with_capacity(rows * columns);
        let mut mask = Vec::with_capacity(rows * columns);
        for encoding in &batch {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, columns), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, columns), &self.device)?;
        let states = run(&ids, &mask)?;

        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// Returns `text` cut to at most [`MAX_TEXT_BYTES`], on a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_respects_char_boundaries() {
        assert_eq!(cut("hello"), "hello");
        let long = "é".repeat(MAX_TEXT_BYTES);
        let cut_text = cut(&long);
        assert!(cut_text.len() <= MAX_TEXT_BYTES);
        assert!(cut_text.chars().all(|c| c == 'é'));
    }
}
