//! The BERT encoder on 8-bit integer dense layers ([`pai_int8`]),
//! written out in plain loops over one thread.
//!
//! Texts go in unpadded: the dense layers take every token of the batch as
//! one matrix and attention runs per text over its own tokens, so a short
//! query batched with a long one costs no padding. Each call stays on the
//! calling thread; the batcher runs one call per core. candle's path spread
//! each small operation over both cores and perf had ~20 % of the CPU spinning
//! between operations at 16 concurrent queries.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use pai_int8::{Kernel, PackedLinear};

use crate::error::{InferenceError, Result};
use crate::quantized_bert::{EmbeddingTables, stacked_qkv};

/// A layer norm's parameters.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vars: &VarBuilder<'_>, hidden: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vars.get(hidden, "weight")?.to_vec1()?,
            bias: vars.get(hidden, "bias")?.to_vec1()?,
            eps: eps as f32,
        })
    }

    /// Normalises each row of `x` in place.
    #[inline(always)]
    fn apply(&self, x: &mut [f32]) {
        let hidden = self.weight.len();
        for row in x.chunks_exact_mut(hidden) {
            let mean = sum(row) / hidden as f32;
            for value in row.iter_mut() {
                *value -= mean;
            }
            let mut squares = [0.0_f32; LANES];
            for chunk in row.chunks(LANES) {
                for (square, value) in squares.iter_mut().zip(chunk) {
                    *square += value * value;
                }
            }
            let variance = sum(&squares) / hidden as f32;
            let inverse = 1.0 / (variance + self.eps).sqrt();
            for ((value, weight), bias) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *value = *value * inverse * weight + bias;
            }
        }
    }
}

struct Layer {
    /// Query, key and value projections stacked: one product instead of three.
    qkv: PackedLinear,
    attention_output: PackedLinear,
    attention_norm: Norm,
    intermediate: PackedLinear,
    output: PackedLinear,
    output_norm: Norm,
}

/// all-MiniLM-L6-v2 (or any BERT) with int8 dense layers.
pub struct Int8Bert {
    kernel: Kernel,
    /// `vocab × hidden`, row-major.
    words: Vec<f32>,
    /// `positions × hidden`.
    positions: Vec<f32>,
    /// The token-type-0 row (sentence embeddings use no other).
    token_type: Vec<f32>,
    norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
}

/// Buffers reused across the layers of one call.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    inner: Vec<f32>,
    scores: Vec<f32>,
    queries: Vec<f32>,
    keys: Vec<f32>,
}

/// Returns a tensor's values in row-major order.
fn values(tensor: &Tensor) -> candle_core::Result<Vec<f32>> {
    tensor.flatten_all()?.to_vec1()
}

/// Reads and packs the dense layer under `vars` (`weight`, `bias`).
fn linear(vars: &VarBuilder<'_>, inputs: usize, outputs: usize) -> Result<PackedLinear> {
    let weight = values(&vars.get((outputs, inputs), "weight")?)?;
    let bias = values(&vars.get(outputs, "bias")?)?;
    Ok(PackedLinear::new(&weight, &bias, inputs, outputs)?)
}

impl Int8Bert {
    /// Reads a BERT checkpoint's f32 weights and quantizes its dense layers
    /// for `kernel` (an error if this CPU does not run it).
    pub fn load(vars: &VarBuilder<'_>, config: &Config, kernel: Kernel) -> Result<Self> {
        let kernel = kernel.among(&Kernel::available())?;
        let hidden = config.hidden_size;
        let inner = config.intermediate_size;
        if config.num_attention_heads == 0 || !hidden.is_multiple_of(config.num_attention_heads) {
            return Err(InferenceError::Model(format!(
                "{hidden} hidden values do not split into {} heads",
                config.num_attention_heads
            )));
        }
        let eps = config.layer_norm_eps;
        let embeddings = vars.pp("embeddings");
        let tables = EmbeddingTables::load(&embeddings, config)?;
        let norm = Norm::load(&embeddings.pp("LayerNorm"), hidden, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let layer = vars.pp(format!("encoder.layer.{index}"));
            let attention = layer.pp("attention");
            let (qkv_weight, qkv_bias) = stacked_qkv(&attention, hidden)?;
            layers.push(Layer {
                qkv: PackedLinear::new(
                    &values(&qkv_weight)?,
                    &values(&qkv_bias)?,
                    hidden,
                    3 * hidden,
                )?,
                attention_output: linear(&attention.pp("output.dense"), hidden, hidden)?,
                attention_norm: Norm::load(&attention.pp("output.LayerNorm"), hidden, eps)?,
                intermediate: linear(&layer.pp("intermediate.dense"), hidden, inner)?,
                output: linear(&layer.pp("output.dense"), inner, hidden)?,
                output_norm: Norm::load(&layer.pp("output.LayerNorm"), hidden, eps)?,
            });
        }
        Ok(Self {
            kernel,
            words: values(&tables.words)?,
            positions: values(&tables.positions)?,
            token_type: values(&tables.token_type)?,
            norm,
            layers,
            hidden,
            heads: config.num_attention_heads,
        })
    }

    /// Returns the unit-length mean of the last hidden states of each
    /// text's token `ids` (unpadded, at most the model's positions long),
    /// calling `pause` between steps: after each layer's attention and
    /// between layers.
    pub fn embed(&self, texts: &[&[u32]], pause: &mut dyn FnMut()) -> Result<Vec<Vec<f32>>> {
        let hidden = self.hidden;
        let vocab = self.words.len() / hidden;
        let most = self.positions.len() / hidden;
        let mut x = Vec::with_capacity(texts.iter().map(|ids| ids.len()).sum::<usize>() * hidden);
        for ids in texts {
            if ids.is_empty() || ids.len() > most {
                return Err(InferenceError::Model(format!(
                    "a text of {} tokens (the model takes 1 to {most})",
                    ids.len()
                )));
            }
            for (position, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= vocab {
                    return Err(InferenceError::Model(format!(
                        "token id {id} is outside the vocabulary of {vocab}"
                    )));
                }
                let word = &self.words[id * hidden..(id + 1) * hidden];
                let place = &self.positions[position * hidden..(position + 1) * hidden];
                x.extend(
                    word.iter()
                        .zip(place)
                        .zip(&self.token_type)
                        .map(|((w, p), t)| w + p + t),
                );
            }
        }
        let lengths: Vec<usize> = texts.iter().map(|ids| ids.len()).collect();
        // The f32 loops below, inlined into the closure, are compiled once
        // more for AVX2 and chosen at run time. The closure must be inlined
        // into the runner too: called, it would run in baseline instructions.
        Ok(pai_int8::vectorized(
            #[inline(always)]
            || self.encode(&mut x, &lengths, pause),
        ))
    }

    /// The encoder over the summed embeddings `x` of texts of `lengths`
    /// tokens, then the pooling.
    #[inline(always)]
    fn encode(&self, x: &mut [f32], lengths: &[usize], pause: &mut dyn FnMut()) -> Vec<Vec<f32>> {
        self.norm.apply(x);
        let mut scratch = Scratch::default();
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 {
                pause();
            }
            self.attention(layer, lengths, x, &mut scratch);
            pause();
            self.feed_forward(layer, x, &mut scratch);
        }
        pool(x, lengths, self.hidden)
    }

    /// Self-attention of each text over its own tokens, plus the residual
    /// and the layer norm, in place.
    #[inline]
    fn attention(&self, layer: &Layer, lengths: &[usize], x: &mut [f32], scratch: &mut Scratch) {
        let hidden = self.hidden;
        let head = hidden / self.heads;
        let scale = 1.0 / (head as f32).sqrt();
        layer.qkv.forward(self.kernel, x, &mut scratch.qkv);
        let qkv = &scratch.qkv;
        let context = &mut scratch.context;
        context.clear();
        context.resize(x.len(), 0.0);
        let mut start = 0;
        for &tokens in lengths {
            let row = |token: usize| &qkv[(start + token) * 3 * hidden..][..3 * hidden];
            let padded = tokens.next_multiple_of(KEY_BLOCK);
            // Each head's queries (scaled) and keys (transposed, head ×
            // padded tokens): the scores become sums of whole blocks of keys
            // that stay in registers. The padding is zeroed once per text;
            // every head writes the same places over it.
            scratch.queries.clear();
            scratch
                .queries
                .resize(tokens.next_multiple_of(QUERY_BLOCK) * head, 0.0);
            scratch.keys.clear();
            scratch.keys.resize(head * padded, 0.0);
            for h in 0..self.heads {
                let (query_at, key_at, value_at) =
                    (h * head, hidden + h * head, 2 * hidden + h * head);
                for token in 0..tokens {
                    let row = row(token);
                    for (q, &value) in scratch.queries[token * head..][..head]
                        .iter_mut()
                        .zip(&row[query_at..query_at + head])
                    {
                        *q = value * scale;
                    }
                    for (d, &value) in row[key_at..key_at + head].iter().enumerate() {
                        scratch.keys[d * padded + token] = value;
                    }
                }
                attention_scores(&scratch.queries, &scratch.keys, head, &mut scratch.scores);
                for query in 0..tokens {
                    let scores = &mut scratch.scores[query * padded..][..tokens];
                    softmax(scores);
                    let out = &mut context[(start + query) * hidden + h * head..][..head];
                    weighted_sum(scores, |value| &row(value)[value_at..value_at + head], out);
                }
            }
            start += tokens;
        }
        layer
            .attention_output
            .forward(self.kernel, context, &mut scratch.projected);
        add_assign(x, &scratch.projected);
        layer.attention_norm.apply(x);
    }

    /// The feed-forward block, residual and layer norm, in place.
    #[inline]
    fn feed_forward(&self, layer: &Layer, x: &mut [f32], scratch: &mut Scratch) {
        layer
            .intermediate
            .forward(self.kernel, x, &mut scratch.inner);
        pai_int8::map_in_place(&mut scratch.inner, gelu);
        layer
            .output
            .forward(self.kernel, &scratch.inner, &mut scratch.projected);
        add_assign(x, &scratch.projected);
        layer.output_norm.apply(x);
    }
}

/// Keys whose scores one step of [`attention_scores`] sums at once (one AVX2 register).
const KEY_BLOCK: usize = 8;
/// Queries one step of [`attention_scores`] takes at once: independent sums, so the
/// additions overlap instead of waiting for each other.
const QUERY_BLOCK: usize = 4;

/// Every query's score for every key, `q · k`, into `scores` (query-major,
/// a row per query as long as a row of `keys_t`). `queries` holds rows of
/// `head` values, zero-padded to a multiple of [`QUERY_BLOCK`] rows;
/// `keys_t` holds the keys transposed (`head` rows), zero-padded to a
/// multiple of [`KEY_BLOCK`] columns. Each score adds its products in `d`
/// order from 0.0, as a plain loop would, so the results are the same; the
/// sums of a block of queries and keys stay in registers.
#[inline]
fn attention_scores(queries: &[f32], keys_t: &[f32], head: usize, scores: &mut Vec<f32>) {
    let padded = keys_t.len() / head;
    let rows = queries.len() / head;
    // The blocks below write every place.
    scores.resize(rows * padded, 0.0);
    for first_query in (0..rows).step_by(QUERY_BLOCK) {
        let block = &queries[first_query * head..][..QUERY_BLOCK * head];
        for first_key in (0..padded).step_by(KEY_BLOCK) {
            let mut sums = [[0.0_f32; KEY_BLOCK]; QUERY_BLOCK];
            for d in 0..head {
                let keys = &keys_t[d * padded + first_key..][..KEY_BLOCK];
                for (i, row) in sums.iter_mut().enumerate() {
                    let q = block[i * head + d];
                    for (sum, &k) in row.iter_mut().zip(keys) {
                        *sum += q * k;
                    }
                }
            }
            for (i, row) in sums.iter().enumerate() {
                scores[(first_query + i) * padded + first_key..][..KEY_BLOCK].copy_from_slice(row);
            }
        }
    }
}

/// Outputs one step of [`weighted_sum`] sums at once (four AVX2 registers).
const VALUE_BLOCK: usize = 32;

/// `out = Σ weights[v] · value(v)` over rows as long as `out`. Each output
/// adds its products in `v` order from 0.0, as a plain loop would, so the
/// results are the same; the sums of a block of outputs stay in registers.
#[inline]
fn weighted_sum<'a>(weights: &[f32], value: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
    let whole = out.len() - out.len() % VALUE_BLOCK;
    for at in (0..whole).step_by(VALUE_BLOCK) {
        let mut sums = [0.0_f32; VALUE_BLOCK];
        for (v, &weight) in weights.iter().enumerate() {
            for (sum, &x) in sums.iter_mut().zip(&value(v)[at..at + VALUE_BLOCK]) {
                *sum += weight * x;
            }
        }
        out[at..at + VALUE_BLOCK].copy_from_slice(&sums);
    }
    let rest = &mut out[whole..];
    rest.fill(0.0);
    for (v, &weight) in weights.iter().enumerate() {
        for (o, &x) in rest.iter_mut().zip(&value(v)[whole..]) {
            *o += weight * x;
        }
    }
}

/// Lanes of the partial sums below: sums kept in this many independent
/// parts vectorize; a single running sum must add in order and does not.
const LANES: usize = 16;

/// Returns the sum of `values`.
#[inline]
fn sum(values: &[f32]) -> f32 {
    let mut parts = [0.0_f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (part, value) in parts.iter_mut().zip(chunk) {
            *part += value;
        }
    }
    parts.iter().sum::<f32>() + rest
}

/// Returns the largest of `values` (−∞ for none).
#[inline]
fn largest(values: &[f32]) -> f32 {
    let mut parts = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for chunk in chunks {
        for (part, &value) in parts.iter_mut().zip(chunk) {
            *part = part.max(value);
        }
    }
    parts.iter().fold(rest, |m, &v| m.max(v))
}

/// Turns `scores` into probabilities, in place.
#[inline]
fn softmax(scores: &mut [f32]) {
    let top = largest(scores);
    for score in scores.iter_mut() {
        *score = exp(*score - top);
    }
    let inverse = 1.0 / sum(scores);
    for score in scores.iter_mut() {
        *score *= inverse;
    }
}

/// `eˣ` for x ≤ 0 (softmax's range) in plain arithmetic that vectorizes:
/// 2ⁿ from the exponent bits times a degree-6 polynomial for the rest
/// (relative error under 1e-6); libm's expf took one value at a time.
#[inline]
fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Adding and taking away 1.5·2²³ rounds to the nearest integer in
    // plain arithmetic (`round` would call libm: x86-64's baseline has no
    // vector rounding instruction).
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 in two parts (Cody–Waite): n·ln 2 in one f32 would lose the
    // low bits of r for large |x|.
    let r = (x - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let mut p = 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n is in −126..=0 here, so the biased exponent is a normal one.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline]
fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Mean of each text's token states, L2-normalised (sentence-transformers'
/// pooling for this model).
#[inline]
fn pool(x: &[f32], lengths: &[usize], hidden: usize) -> Vec<Vec<f32>> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&tokens| {
            let mut mean = vec![0.0_f32; hidden];
            for row in x[start * hidden..(start + tokens) * hidden].chunks_exact(hidden) {
                add_assign(&mut mean, row);
            }
            start += tokens;
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for value in &mut mean {
                *value /= norm;
            }
            mean
        })
        .collect()
}

/// GELU, `x·Φ(x)`, with erf from a rational approximation (Eigen's fast
/// float erf, exact ±1 beyond |x| = 4): plain arithmetic the compiler
/// vectorizes, where libm's erf took one value at a time and ~11 % of a
/// search's CPU (perf).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_6e-5;
    p = x2 * p - 7.349_906e-4;
    p = x2 * p - 2.9546e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_the_exact_one_over_softmax_range() {
        for step in 0..=87_000 {
            let x = -(step as f32) / 1000.0;
            let (fast, exact) = (exp(x), x.exp());
            assert!(
                (fast - exact).abs() <= exact * 1e-6 + 1e-38,
                "exp({x}): {fast} vs {exact}"
            );
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
    }

    #[test]
    fn blocked_scores_equal_plain_dot_products() {
        let (head, tokens): (usize, usize) = (32, 13);
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        let padded = tokens.next_multiple_of(KEY_BLOCK);
        let mut queries = vec![0.0; tokens.next_multiple_of(QUERY_BLOCK) * head];
        let mut keys_t = vec![0.0; head * padded];
        for token in 0..tokens {
            for d in 0..head {
                queries[token * head + d] = value(token * head + d);
                keys_t[d * padded + token] = value(5_000 + token * head + d);
            }
        }
        let mut blocked = Vec::new();
        attention_scores(&queries, &keys_t, head, &mut blocked);
        for query in 0..tokens {
            for key in 0..tokens {
                let mut plain = 0.0_f32;
                for d in 0..head {
                    plain += queries[query * head + d] * keys_t[d * padded + key];
                }
                assert_eq!(
                    blocked[query * padded + key].to_bits(),
                    plain.to_bits(),
                    "query {query}, key {key}"
                );
            }
        }
    }

    #[test]
    fn blocked_weighted_sums_equal_plain_ones() {
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        for head in [32, 40] {
            let tokens = 11;
            let weights: Vec<f32> = (0..tokens).map(|v| value(9_000 + v) / 5.0).collect();
            let rows: Vec<f32> = (0..tokens * head).map(value).collect();
            let row = |v: usize| &rows[v * head..(v + 1) * head];
            let mut blocked = vec![f32::NAN; head];
            weighted_sum(&weights, row, &mut blocked);
            for (i, &got) in blocked.iter().enumerate() {
                let mut plain = 0.0_f32;
                for (v, &weight) in weights.iter().enumerate() {
                    plain += weight * row(v)[i];
                }
                assert_eq!(got.to_bits(), plain.to_bits(), "head {head}, output {i}");
            }
        }
    }

    #[test]
    fn softmax_gives_probabilities_in_the_scores_order() {
        let mut scores: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let expected: Vec<f32> = {
            let top = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let exps: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
            let total: f32 = exps.iter().sum();
            exps.iter().map(|e| e / total).collect()
        };
        softmax(&mut scores);
        assert!((sum(&scores) - 1.0).abs() < 1e-5);
        for (got, want) in scores.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
