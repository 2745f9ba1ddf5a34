//! Dense layers as 8-bit integer matrix products, one thread per call.
//!
//! Weights are quantized once, symmetrically per output (int8 in −127..127
//! with one f32 scale each); each call quantizes its input rows
//! asymmetrically per row (uint8 with a scale and a zero point), multiplies
//! in exact 32-bit integers and converts once per output value:
//!
//! `y[m][n] = (Σₖ xq[m][k]·wq[n][k] − zp[m]·Σₖ wq[n][k]) · sx[m] · sw[n] + b[n]`
//!
//! On CPUs with AVX-512 VNNI the inner product is `vpdpbusd` (64 multiply-adds
//! of uint8 by int8 per instruction) on weights stored in the order it reads
//! them; elsewhere a portable loop computes the same integers. Neither
//! spawns threads: the batcher runs one forward pass per core instead, so
//! no core waits on another between layers.

use crate::error::{InferenceError, Result};

/// Output columns per packed panel: four 16-lane vectors.
const PANEL: usize = 64;
/// Inputs per `vpdpbusd` lane.
const GROUP: usize = 4;
/// Input rows per register tile of the VNNI kernel.
const TILE_ROWS: usize = 4;

/// Which inner-product code runs, chosen once from the CPU's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI.
    Vnni,
    /// Plain Rust on any CPU (the same integer results).
    Portable,
}

impl Kernel {
    /// Returns the fastest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return Self::Vnni;
            }
        }
        Self::Portable
    }
}

/// A dense layer's weights, quantized and laid out for the kernel.
pub struct PackedLinear {
    inputs: usize,
    outputs: usize,
    /// `inputs` rounded up to [`GROUP`].
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
            return Err(InferenceError::Model(format!(
                "a {outputs}×{inputs} layer needs {} weights and {outputs} biases, got {} and {}",
                inputs * outputs,
                weight.len(),
                bias.len()
            )));
        }
        let depth = inputs.next_multiple_of(GROUP);
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
    /// (rows of `outputs` values).
    pub fn forward(&self, kernel: Kernel, x: &[f32], out: &mut Vec<f32>) {
        let rows = x.len() / self.inputs;
        let input = QuantizedRows::new(x, rows, self.inputs, self.depth);
        out.clear();
        out.resize(rows * self.outputs, 0.0);
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => vnni::product(self, &input, out),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Vnni => portable_product(self, &input, out),
            Kernel::Portable => portable_product(self, &input, out),
        }
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

/// Input rows quantized to uint8, one scale and zero point per row, each
/// row padded to the layer's depth.
struct QuantizedRows {
    values: Vec<u8>,
    depth: usize,
    scales: Vec<f32>,
    zero_points: Vec<i32>,
}

impl QuantizedRows {
    fn new(x: &[f32], rows: usize, inputs: usize, depth: usize) -> Self {
        let mut values = vec![0_u8; rows * depth];
        let mut scales = Vec::with_capacity(rows);
        let mut zero_points = Vec::with_capacity(rows);
        for (row, target) in x.chunks_exact(inputs).zip(values.chunks_exact_mut(depth)) {
            // The range includes 0 so that zero (and the padding) is exact.
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
            let scale = if high > low {
                (high - low) / 255.0
            } else {
                1.0
            };
            let zero = (-low / scale).round().clamp(0.0, 255.0);
            let inverse = 1.0 / scale;
            // Rounds half up by truncating `+ 0.5` (the values are ≥ 0, and
            // the cast saturates): x86-64's baseline has no vector rounding
            // instruction, and `round` would call libm once per value.
            for (q, &value) in target.iter_mut().zip(row) {
                *q = (value * inverse + zero + 0.5) as u8;
            }
            // Padding multiplies zero weights: any value will do.
            scales.push(scale);
            zero_points.push(zero as i32);
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

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "AVX-512 intrinsics: pointer loads and calls into target-feature code"
)]
mod vnni {
    use std::arch::x86_64::{
        __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_si512,
        _mm512_storeu_si512,
    };

    use super::{GROUP, PANEL, PackedLinear, QuantizedRows, TILE_ROWS};

    pub(super) fn product(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        assert!(
            super::Kernel::detect() == super::Kernel::Vnni,
            "the VNNI kernel needs AVX-512 VNNI"
        );
        // SAFETY: the CPU has the features `product_vnni` is compiled for
        // (checked above).
        unsafe { product_vnni(layer, input, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn product_vnni(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        let rows = input.rows();
        for panel in 0..layer.panels() {
            let weights = layer.panel(panel);
            let mut row = 0;
            while row + TILE_ROWS <= rows {
                tile::<TILE_ROWS>(layer, input, row, panel, weights, out);
                row += TILE_ROWS;
            }
            while row < rows {
                tile::<1>(layer, input, row, panel, weights, out);
                row += 1;
            }
        }
    }

    /// Rows `first..first + ROWS` of one panel: `ROWS × 4` accumulators stay
    /// in registers for the whole depth.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn tile<const ROWS: usize>(
        layer: &PackedLinear,
        input: &QuantizedRows,
        first: usize,
        panel: usize,
        weights: &[i8],
        out: &mut [f32],
    ) {
        let steps = layer.depth / GROUP;
        assert!(weights.len() == steps * PANEL * GROUP);
        assert!(first + ROWS <= input.rows());
        let sources: [&[u8]; ROWS] = std::array::from_fn(|r| input.row(first + r));
        let mut sums: [[__m512i; 4]; ROWS] = [[_mm512_setzero_si512(); 4]; ROWS];
        for step in 0..steps {
            let block = weights[step * PANEL * GROUP..].as_ptr();
            // SAFETY: each step's block holds PANEL·GROUP = 256 bytes (the
            // length is asserted above); unaligned loads are allowed.
            let columns = unsafe {
                [
                    _mm512_loadu_si512(block.cast()),
                    _mm512_loadu_si512(block.add(64).cast()),
                    _mm512_loadu_si512(block.add(128).cast()),
                    _mm512_loadu_si512(block.add(192).cast()),
                ]
            };
            for (source, sums) in sources.iter().zip(sums.iter_mut()) {
                let at = step * GROUP;
                let group = [source[at], source[at + 1], source[at + 2], source[at + 3]];
                let broadcast = _mm512_set1_epi32(i32::from_le_bytes(group));
                for (sum, column) in sums.iter_mut().zip(columns) {
                    *sum = _mm512_dpbusd_epi32(*sum, broadcast, column);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            let mut products = [0_i32; PANEL];
            for (part, sum) in sums.iter().enumerate() {
                // SAFETY: `products` has room for 16 values at every 16th index.
                unsafe { _mm512_storeu_si512(products[part * 16..].as_mut_ptr().cast(), *sum) };
            }
            layer.finish(input, first + r, panel, &products, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of values in −1..1.
    fn values(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn exact(x: &[f32], w: &[f32], b: &[f32], inputs: usize) -> Vec<f32> {
        x.chunks_exact(inputs)
            .flat_map(|row| {
                w.chunks_exact(inputs)
                    .zip(b)
                    .map(|(column, bias)| {
                        row.iter().zip(column).map(|(a, c)| a * c).sum::<f32>() + bias
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_product_is_close_to_the_f32_one_for_odd_shapes() {
        // Neither dimension a multiple of the kernel's blocks, 7 rows
        // (one tile of four and three single rows).
        let (rows, inputs, outputs) = (7, 37, 70);
        let x = values(rows * inputs, 1);
        let w = values(outputs * inputs, 2);
        let b = values(outputs, 3);
        let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
        let mut out = Vec::new();
        layer.forward(Kernel::Portable, &x, &mut out);
        let expected = exact(&x, &w, &b, inputs);
        assert_eq!(out.len(), expected.len());
        for (got, want) in out.iter().zip(&expected) {
            assert!((got - want).abs() < 0.05, "{got} vs {want}");
        }
    }

    #[test]
    fn the_vnni_kernel_computes_the_same_values_as_the_portable_one() {
        if Kernel::detect() != Kernel::Vnni {
            eprintln!("this CPU has no AVX-512 VNNI: only the portable kernel runs here");
            return;
        }
        for (rows, inputs, outputs) in [(1, 384, 384), (9, 384, 1152), (5, 1536, 384), (6, 37, 70)]
        {
            let x: Vec<f32> = values(rows * inputs, 4)
                .iter()
                .map(|v| v * 3.0 + 0.5)
                .collect();
            let w = values(outputs * inputs, 5);
            let b = values(outputs, 6);
            let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
            let (mut vnni, mut portable) = (Vec::new(), Vec::new());
            layer.forward(Kernel::Vnni, &x, &mut vnni);
            layer.forward(Kernel::Portable, &x, &mut portable);
            assert_eq!(vnni, portable, "{rows}×{inputs}→{outputs}");
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        assert!(PackedLinear::new(&[0.0; 6], &[0.0; 2], 4, 2).is_err());
        assert!(PackedLinear::new(&[0.0; 8], &[0.0; 3], 4, 2).is_err());
    }
}
