//! Dense layers as 8-bit integer matrix products, one thread per call: pai's
//! int8 kernels, the only crate of the workspace allowed `unsafe` (in its
//! machine-level modules `vnni`, `avx2` and `amx` alone; see `Cargo.toml`).
//!
//! Weights are quantized once, symmetrically per output (int8 in −127..127
//! with one f32 scale each); each call quantizes its input rows
//! asymmetrically per row (uint8 with a scale and a zero point), multiplies
//! in exact 32-bit integers and converts once per output value:
//!
//! `y[m][n] = (Σₖ xq[m][k]·wq[n][k] − zp[m]·Σₖ wq[n][k]) · sx[m] · sw[n] + b[n]`
//!
//! On CPUs with AMX (Sapphire Rapids and later) the product is `tdpbusd`
//! on 16×64-byte tiles (16,384 multiply-adds per instruction); with AVX-512
//! VNNI it is `vpdpbusd` (64 per instruction); with AVX2 it is `vpmaddwd`
//! on inputs and weights widened to 16 bits (16 per instruction); elsewhere
//! a portable loop computes the same integers. The weights are stored once,
//! in the order the instructions read them. None of them spawns threads:
//! the caller runs one forward pass per core instead, so no core waits on
//! another between layers. [`Kernel::detect`] picks the fastest, unless
//! `PAI_INT8_KERNEL` ([`KERNEL_VAR`]) names another.

mod error;
mod kernel;
#[cfg(test)]
mod tests;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod vnni;

pub use crate::error::{Int8Error, Result};
pub use crate::kernel::{KERNEL_VAR, Kernel};

/// Output columns per packed panel: four 16-lane vectors.
const PANEL: usize = 64;
/// Inputs per `vpdpbusd` lane (and per `tdpbusd` column).
const GROUP: usize = 4;
/// Inputs per tile row of the AMX kernel: the depth is padded to it.
const DEPTH_STEP: usize = 64;
/// Input rows per register tile of the VNNI kernel: 6 × 4 accumulators,
/// 4 weight vectors and a broadcast fill 29 of the 32 vector registers.
const TILE_ROWS: usize = 6;
/// Input rows per AMX tile: the quantized rows are padded to it.
const AMX_ROWS: usize = 16;

/// A dense layer's weights, quantized and laid out for the kernel.
pub struct PackedLinear {
    inputs: usize,
    outputs: usize,
    /// `inputs` rounded up to [`DEPTH_STEP`].
    depth: usize,
    /// `[panel][depth / GROUP][PANEL][GROUP]`: panel `p`, step `s`, column
    /// `c`, byte `j` holds `w[p·PANEL + c][s·GROUP + j]` (zero past the ends).
    weights: Vec<i8>,
    /// Per output column (padded to whole panels): the weight scale, the sum
    /// of the quantized weights, the bias.
    scales: Vec<f32>,
    sums: Vec<i32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedLinear")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl PackedLinear {
    /// Quantizes `weight` (`outputs` rows of `inputs` values, row-major, as
    /// a PyTorch `Linear` stores it) and keeps `bias`.
    pub fn new(weight: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Result<Self> {
        if inputs == 0 || weight.len() != inputs * outputs || bias.len() != outputs {
            return Err(Int8Error::Shape(format!(
                "a {outputs}×{inputs} layer needs {} weights and {outputs} biases, got {} and {}",
                inputs * outputs,
                weight.len(),
                bias.len()
            )));
        }
        let depth = inputs.next_multiple_of(DEPTH_STEP);
        let columns = outputs.next_multiple_of(PANEL);
        let mut scales = vec![1.0; columns];
        let mut sums = vec![0; columns];
        let mut padded_bias = vec![0.0; columns];
        padded_bias[..outputs].copy_from_slice(bias);
        let mut quantized = vec![0_i8; columns * depth];
        for (column, row) in weight.chunks_exact(inputs).enumerate() {
            let largest = row.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            scales[column] = scale;
            let target = &mut quantized[column * depth..column * depth + inputs];
            for (q, &value) in target.iter_mut().zip(row) {
                // In −127..=127 by construction: |value| ≤ largest.
                *q = (value / scale).round().clamp(-127.0, 127.0) as i8;
            }
            sums[column] = target.iter().map(|&q| i32::from(q)).sum();
        }
        let steps = depth / GROUP;
        let mut weights = vec![0_i8; columns * depth];
        for column in 0..columns {
            let (panel, lane) = (column / PANEL, column % PANEL);
            for step in 0..steps {
                let to = ((panel * steps + step) * PANEL + lane) * GROUP;
                let from = column * depth + step * GROUP;
                weights[to..to + GROUP].copy_from_slice(&quantized[from..from + GROUP]);
            }
        }
        Ok(Self {
            inputs,
            outputs,
            depth,
            weights,
            scales,
            sums,
            bias: padded_bias,
        })
    }

    /// Returns `x · Wᵀ + b` for `x`'s rows of `inputs` values, in `out`
    /// (rows of `outputs` values). Panics if this CPU does not run `kernel`
    /// (see [`Kernel::available`]).
    pub fn forward(&self, kernel: Kernel, x: &[f32], out: &mut Vec<f32>) {
        let rows = x.len() / self.inputs;
        let input = QuantizedRows::new(kernel, x, rows, self.inputs, self.depth);
        out.clear();
        out.resize(rows * self.outputs, 0.0);
        product(kernel, self, &input, out);
    }

    /// The packed weights of panel `panel`.
    fn panel(&self, panel: usize) -> &[i8] {
        let size = PANEL * self.depth;
        &self.weights[panel * size..(panel + 1) * size]
    }

    fn panels(&self) -> usize {
        self.scales.len() / PANEL
    }

    /// Writes the `columns` real outputs of panel `panel` for one input row
    /// from its integer products.
    #[inline(always)]
    fn finish(
        &self,
        input: &QuantizedRows,
        row: usize,
        panel: usize,
        products: &[i32; PANEL],
        out: &mut [f32],
    ) {
        let first = panel * PANEL;
        let columns = PANEL.min(self.outputs - first);
        let scale = input.scales[row];
        let zero = input.zero_points[row];
        let target = &mut out[row * self.outputs + first..][..columns];
        let sums = &self.sums[first..first + PANEL];
        let scales = &self.scales[first..first + PANEL];
        let bias = &self.bias[first..first + PANEL];
        for (column, value) in target.iter_mut().enumerate() {
            let exact = products[column] - zero * sums[column];
            *value = exact as f32 * (scale * scales[column]) + bias[column];
        }
    }
}

/// Writes `input`'s product with `layer` into `out` on `kernel`.
fn product(kernel: Kernel, layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
    match kernel {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        Kernel::Amx => amx::product(layer, input, out),
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => vnni::product(layer, input, out),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => avx2::product(layer, input, out),
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        Kernel::Amx => portable_product(layer, input, out),
        #[cfg(not(target_arch = "x86_64"))]
        Kernel::Vnni | Kernel::Avx2 => portable_product(layer, input, out),
        Kernel::Portable => portable_product(layer, input, out),
    }
}

/// Applies `f` to every value: in AVX-512 or AVX2 where the CPU has it
/// (the compiler vectorizes `f` sixteen or eight lanes wide; the same IEEE
/// operations, so the same results) and in the baseline instructions
/// elsewhere. `f` should be plain arithmetic marked `#[inline(always)]`.
pub fn map_in_place(values: &mut [f32], f: impl Fn(f32) -> f32) {
    // Each closure is inlined into its runner, so the loop is built with
    // the runner's features.
    #[cfg(target_arch = "x86_64")]
    if vnni::usable() {
        return vnni::vectorized(
            #[inline(always)]
            || apply(values, &f),
        );
    }
    vectorized(
        #[inline(always)]
        || apply(values, &f),
    );
}

#[inline(always)]
fn apply(values: &mut [f32], f: &impl Fn(f32) -> f32) {
    for value in values {
        *value = f(*value);
    }
}

/// Runs `f` compiled for AVX2 where the CPU has it: what the compiler
/// inlines into `f` is vectorized eight lanes wide (baseline x86-64 has
/// four); the same IEEE operations in the same order, so the same results.
/// `f` must be inlined here too (a closure marked `#[inline(always)]`): a
/// closure that is called keeps the baseline instructions it was built in.
/// AVX2 on AVX-512 CPUs too: the encoder's loops are short (a query's
/// attention runs over ~12 tokens), and wider vectors leave more of them to
/// a scalar tail.
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx2::usable() {
        return avx2::vectorized(f);
    }
    f()
}

/// The scale and zero point that map `low..=high` (a range holding 0, so
/// that zero and the padding are exact) onto 0..=255.
fn scale_and_zero(low: f32, high: f32) -> (f32, f32) {
    let scale = if high > low {
        (high - low) / 255.0
    } else {
        1.0
    };
    (scale, (-low / scale).round().clamp(0.0, 255.0))
}

/// Quantizes one row into `target` (its first `row.len()` bytes; the
/// padding after them multiplies zero weights) and returns its scale and
/// zero point. Rounds half up by truncating `+ 0.5`
/// (the values are ≥ 0, and the cast saturates): x86-64's baseline has no
/// vector rounding instruction, and `round` would call libm once per value.
fn quantize_row(row: &[f32], target: &mut [u8]) -> (f32, i32) {
    // Sixteen running minima and maxima vectorize; one would not.
    let (mut lows, mut highs) = ([0.0_f32; 16], [0.0_f32; 16]);
    for chunk in row.chunks(16) {
        for ((low, high), &value) in lows.iter_mut().zip(highs.iter_mut()).zip(chunk) {
            *low = low.min(value);
            *high = high.max(value);
        }
    }
    let low = lows.iter().fold(0.0_f32, |m, &v| m.min(v));
    let high = highs.iter().fold(0.0_f32, |m, &v| m.max(v));
    let (scale, zero) = scale_and_zero(low, high);
    let inverse = 1.0 / scale;
    for (q, &value) in target.iter_mut().zip(row) {
        *q = (value * inverse + zero + 0.5) as u8;
    }
    (scale, zero as i32)
}

/// The row quantizer for `kernel`'s products: the AVX-512 one wherever the
/// CPU has it, else the AVX2 one where it has that (the same bytes, sixteen
/// or 32 values a step), else the portable one.
fn row_quantizer(kernel: Kernel) -> fn(&[f32], &mut [u8]) -> (f32, i32) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx | Kernel::Vnni if vnni::usable() => vnni::quantize_row,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if avx2::usable() => avx2::quantize_row,
        Kernel::Amx | Kernel::Vnni | Kernel::Avx2 | Kernel::Portable => quantize_row,
    }
}

/// Input rows quantized to uint8, one scale and zero point per row, each
/// row padded to the layer's depth with zeros, and zero rows after the last
/// up to a whole AMX tile.
struct QuantizedRows {
    values: Vec<u8>,
    depth: usize,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QuantizedRows {
    fn new(kernel: Kernel, x: &[f32], rows: usize, inputs: usize, depth: usize) -> Self {
        let mut values = vec![0_u8; rows.next_multiple_of(AMX_ROWS) * depth];
        let mut scales = Vec::with_capacity(rows);
        let mut zero_points = Vec::with_capacity(rows);
        let quantize = row_quantizer(kernel);
        for (row, target) in x.chunks_exact(inputs).zip(values.chunks_exact_mut(depth)) {
            let (scale, zero) = quantize(row, target);
            scales.push(scale);
            zero_points.push(zero);
        }
        Self {
            values,
            depth,
            scales,
            zero_points,
        }
    }

    fn row(&self, row: usize) -> &[u8] {
        &self.values[row * self.depth..(row + 1) * self.depth]
    }

    fn rows(&self) -> usize {
        self.scales.len()
    }
}

/// The product in plain Rust, from the same packed weights.
fn portable_product(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
    for panel in 0..layer.panels() {
        let weights = layer.panel(panel);
        for row in 0..input.rows() {
            let mut products = [0_i32; PANEL];
            for (group, step) in input
                .row(row)
                .chunks_exact(GROUP)
                .zip(weights.chunks_exact(PANEL * GROUP))
            {
                for (product, column) in products.iter_mut().zip(step.chunks_exact(GROUP)) {
                    *product += group
                        .iter()
                        .zip(column)
                        .map(|(&x, &w)| i32::from(x) * i32::from(w))
                        .sum::<i32>();
                }
            }
            layer.finish(input, row, panel, &products, out);
        }
    }
}
