//! A BERT encoder whose dense layers multiply with 8-bit weights (Q8_0:
//! blocks of 32 int8 values with one f16 scale), on candle's quantized
//! kernels.
//!
//! candle's f32 matmul re-packs the whole weight matrix on every call, which
//! costs more than the arithmetic for the few rows of a search query (perf:
//! a 12-token query took 12 ms, 60 % of it in gemm). The quantized kernels
//! read the int8 weights as stored, dispatch to AVX2 or AVX-512 VNNI at run
//! time, and move a quarter of the bytes. Embeddings, layer norms, softmax
//! and the attention products stay f32; the three attention projections are
//! one fused matrix. Cosine to the f32 model stays above 0.99 (tested).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use candle_transformers::models::bert::Config;

/// candle's fastest int8 kernels (AVX-512 VNNI, weights re-tiled once) take
/// inner dimensions in multiples of this; others fall back to AVX2 dot
/// products, about 4x slower here. Padding with zeros changes no result.
const KERNEL_BLOCK: usize = 256;

/// GELU on every value, with [`crate::int8_bert::gelu`]'s vectorisable erf.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    for value in &mut values {
        *value = crate::int8_bert::gelu(*value);
    }
    Tensor::from_vec(values, x.shape(), x.device())
}

/// Returns a layer's query, key and value projections stacked into one
/// `(3·hidden, hidden)` weight and one `3·hidden` bias (`attention` is the
/// layer's `attention` prefix): one product instead of three.
pub(crate) fn stacked_qkv(
    attention: &VarBuilder<'_>,
    hidden: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let parts = ["query", "key", "value"].map(|name| attention.pp("self").pp(name));
    let mut weights = Vec::with_capacity(3);
    let mut biases = Vec::with_capacity(3);
    for part in &parts {
        weights.push(part.get((hidden, hidden), "weight")?);
        biases.push(part.get(hidden, "bias")?);
    }
    Ok((Tensor::cat(&weights, 0)?, Tensor::cat(&biases, 0)?))
}

/// BERT's input tables: word and position embeddings, and the row of
/// token type 0 (sentence embeddings use no other).
pub(crate) struct EmbeddingTables {
    /// `(vocab, hidden)`.
    pub words: Tensor,
    /// `(positions, hidden)`.
    pub positions: Tensor,
    /// `(hidden)`.
    pub token_type: Tensor,
}

impl EmbeddingTables {
    /// Reads the tables under `embeddings` (the checkpoint's `embeddings`
    /// prefix).
    pub(crate) fn load(embeddings: &VarBuilder<'_>, config: &Config) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        Ok(Self {
            words: embeddings.get((config.vocab_size, hidden), "word_embeddings.weight")?,
            positions: embeddings.get(
                (config.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?,
            token_type: embeddings
                .get(
                    (config.type_vocab_size, hidden),
                    "token_type_embeddings.weight",
                )?
                .get(0)?,
        })
    }
}

/// A dense layer: `x · Wᵀ + b` with W quantized.
struct Linear {
    weight: QMatMul,
    bias: Tensor,
    /// Zero columns appended to W (and to x before multiplying).
    padding: usize,
}

impl Linear {
    fn quantize(weight: &Tensor, bias: Tensor) -> candle_core::Result<Self> {
        let input = weight.dim(1)?;
        let padding = input.next_multiple_of(KERNEL_BLOCK) - input;
        let weight = weight.pad_with_zeros(1, 0, padding)?;
        Ok(Self {
            weight: QMatMul::from_qtensor(QTensor::quantize(&weight, GgmlDType::Q8_0)?)?,
            bias,
            padding,
        })
    }

    fn load(vars: &VarBuilder<'_>, input: usize, output: usize) -> candle_core::Result<Self> {
        Self::quantize(
            &vars.get((output, input), "weight")?,
            vars.get(output, "bias")?,
        )
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let product = if self.padding == 0 {
            self.weight.forward(x)?
        } else {
            let last = x.rank() - 1;
            self.weight
                .forward(&x.pad_with_zeros(last, 0, self.padding)?)?
        };
        product.broadcast_add(&self.bias)
    }
}

struct Layer {
    /// Query, key and value projections stacked: one matmul instead of three.
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The encoder: token states for a padded batch of token ids.
pub struct QuantizedBert {
    words: Tensor,
    positions: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
}

impl QuantizedBert {
    /// Reads the f32 weights of a BERT checkpoint and quantizes its dense layers.
    pub fn load(vars: &VarBuilder<'_>, config: &Config) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let eps = config.layer_norm_eps;
        let embeddings = vars.pp("embeddings");
        let EmbeddingTables {
            words,
            positions,
            token_type,
        } = EmbeddingTables::load(&embeddings, config)?;
        let norm = candle_nn::layer_norm(hidden, eps, embeddings.pp("LayerNorm"))?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let layer = vars.pp(format!("encoder.layer.{index}"));
            let attention = layer.pp("attention");
            let (weight, bias) = stacked_qkv(&attention, hidden)?;
            layers.push(Layer {
                qkv: Linear::quantize(&weight, bias)?,
                attention_output: Linear::load(&attention.pp("output.dense"), hidden, hidden)?,
                attention_norm: candle_nn::layer_norm(
                    hidden,
                    eps,
                    attention.pp("output.LayerNorm"),
                )?,
                intermediate: Linear::load(
                    &layer.pp("intermediate.dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                output: Linear::load(&layer.pp("output.dense"), config.intermediate_size, hidden)?,
                output_norm: candle_nn::layer_norm(hidden, eps, layer.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            words,
            positions,
            token_type,
            norm,
            layers,
            hidden,
            heads: config.num_attention_heads,
        })
    }

    /// Returns the last hidden states, (batch, tokens, hidden), for token
    /// `ids` (batch, tokens) whose padding is 0 in `mask`, calling `pause`
    /// between steps: after each layer's attention and between layers.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        pause: &mut dyn FnMut(),
    ) -> candle_core::Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        let words = self.words.index_select(&ids.flatten_all()?, 0)?.reshape((
            batch,
            tokens,
            self.hidden,
        ))?;
        let positions = self.positions.narrow(0, 0, tokens)?;
        let mut x = self.norm.forward(
            &words
                .broadcast_add(&positions)?
                .broadcast_add(&self.token_type)?,
        )?;
        // Padding gets a large negative score before the softmax.
        let padding =
            ((mask.to_dtype(DType::F32)? - 1.0)? * 10_000.0)?.reshape((batch, 1, 1, tokens))?;
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 {
                pause();
            }
            x = self.layer(layer, &x, &padding, pause)?;
        }
        Ok(x)
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        padding: &Tensor,
        pause: &mut dyn FnMut(),
    ) -> candle_core::Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head = hidden / self.heads;
        let qkv = layer.qkv.forward(x)?;
        let split = |index: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, index * hidden, hidden)?
                .reshape((batch, tokens, self.heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (query, key, value) = (split(0)?, split(1)?, split(2)?);
        let scores =
            (query.matmul(&key.t()?)? * (1.0 / (head as f64).sqrt()))?.broadcast_add(padding)?;
        let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probabilities
            .matmul(&value)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, tokens, hidden))?;
        let x = layer
            .attention_norm
            .forward(&(layer.attention_output.forward(&context)? + x)?)?;
        pause();
        let inner = gelu(&layer.intermediate.forward(&x)?)?;
        layer
            .output_norm
            .forward(&(layer.output.forward(&inner)? + &x)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn fast_gelu_matches_the_exact_one() {
        let values: Vec<f32> = (-8000..=8000).map(|i| i as f32 / 1000.0).collect();
        let x = Tensor::from_vec(values.clone(), values.len(), &Device::Cpu).unwrap();
        let exact = x.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        let fast = super::gelu(&x).unwrap().to_vec1::<f32>().unwrap();
        for ((input, e), f) in values.iter().zip(&exact).zip(&fast) {
            assert!((e - f).abs() < 1e-5, "gelu({input}): {f} vs {e}");
        }
    }
}
