//! Dense layers as 8-bit integer matrix products, one thread per call.
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
//! in the order the instructions read them. None of them spawns threads: the batcher
//! runs one forward pass per core instead, so no core waits on another
//! between layers.

use crate::error::{InferenceError, Result};

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

/// Which inner-product code runs, chosen once from the CPU's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX tiles (Intel Advanced Matrix Extensions, Linux).
    Amx,
    /// AVX-512 VNNI.
    Vnni,
    /// AVX2.
    Avx2,
    /// Plain Rust on any CPU (the same integer results).
    Portable,
}

impl Kernel {
    /// Returns the fastest kernel this CPU runs.
    pub fn detect() -> Self {
        Self::available()[0]
    }

    /// Every kernel this CPU (and operating system) runs, fastest first.
    pub fn available() -> Vec<Self> {
        let mut kernels = Vec::new();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if amx::usable() {
            kernels.push(Self::Amx);
        }
        #[cfg(target_arch = "x86_64")]
        if vnni::usable() {
            kernels.push(Self::Vnni);
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::usable() {
            kernels.push(Self::Avx2);
        }
        kernels.push(Self::Portable);
        kernels
    }
}

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
            return Err(InferenceError::Model(format!(
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
    /// (rows of `outputs` values).
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
pub(crate) fn map_in_place(values: &mut [f32], f: impl Fn(f32) -> f32) {
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
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
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

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "AVX-512 intrinsics: pointer loads and calls into target-feature code"
)]
mod vnni {
    use std::arch::x86_64::{
        __m512i, __mmask16, _mm512_add_ps, _mm512_cvtepi32_ps, _mm512_cvttps_epi32,
        _mm512_dpbusd_epi32, _mm512_loadu_ps, _mm512_loadu_si512,
        _mm512_mask_cvtusepi32_storeu_epi8, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_max_epi32, _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps, _mm512_mullo_epi32,
        _mm512_reduce_max_ps, _mm512_reduce_min_ps, _mm512_set1_epi32, _mm512_set1_ps,
        _mm512_setzero_ps, _mm512_setzero_si512, _mm512_sub_epi32,
    };

    use super::{GROUP, PANEL, PackedLinear, QuantizedRows, TILE_ROWS, scale_and_zero};

    /// The lanes of the 16-value step at `at` that fall inside `len` values.
    fn mask(len: usize, at: usize) -> __mmask16 {
        let lanes = (len - at).min(16);
        if lanes == 16 {
            __mmask16::MAX
        } else {
            (1 << lanes) - 1
        }
    }

    /// Runs `f` compiled for AVX-512 ([`super::map_in_place`]).
    pub(super) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
        assert!(usable(), "AVX-512 code needs AVX-512");
        // SAFETY: the CPU has the features (checked above).
        unsafe { run_avx512(f) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// [`super::quantize_row`] in AVX-512: the same bytes, scale and zero
    /// point, sixteen values a step.
    pub(super) fn quantize_row(row: &[f32], target: &mut [u8]) -> (f32, i32) {
        assert!(usable(), "the VNNI quantizer needs AVX-512");
        assert!(target.len() >= row.len());
        // SAFETY: the CPU has the features (checked above); `target` has
        // room for the row (asserted).
        unsafe { quantize_row_avx512(row, target) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn quantize_row_avx512(row: &[f32], target: &mut [u8]) -> (f32, i32) {
        let (mut low, mut high) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for at in (0..row.len()).step_by(16) {
            // SAFETY: the mask covers only values inside `row`; the other
            // lanes read as 0, inside the range already.
            let values =
                unsafe { _mm512_maskz_loadu_ps(mask(row.len(), at), row.as_ptr().add(at)) };
            low = _mm512_min_ps(low, values);
            high = _mm512_max_ps(high, values);
        }
        let (scale, zero) = scale_and_zero(_mm512_reduce_min_ps(low), _mm512_reduce_max_ps(high));
        let (inverse, offset) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_ps(zero));
        let half = _mm512_set1_ps(0.5);
        for at in (0..row.len()).step_by(16) {
            let lanes = mask(row.len(), at);
            // SAFETY: as above; the store writes the same lanes of `target`,
            // which is at least as long as `row`.
            unsafe {
                let values = _mm512_maskz_loadu_ps(lanes, row.as_ptr().add(at));
                let shifted =
                    _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(values, inverse), offset), half);
                // Truncates like `as u8`: below 0 becomes 0, above 255 255.
                let whole = _mm512_max_epi32(_mm512_cvttps_epi32(shifted), _mm512_setzero_si512());
                _mm512_mask_cvtusepi32_storeu_epi8(
                    target.as_mut_ptr().add(at).cast(),
                    lanes,
                    whole,
                );
            }
        }
        (scale, zero as i32)
    }

    pub(super) fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }

    pub(super) fn product(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        assert!(usable(), "the VNNI kernel needs AVX-512 VNNI");
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
            match rows - row {
                0 => {}
                1 => tile::<1>(layer, input, row, panel, weights, out),
                2 => tile::<2>(layer, input, row, panel, weights, out),
                3 => tile::<3>(layer, input, row, panel, weights, out),
                4 => tile::<4>(layer, input, row, panel, weights, out),
                _ => tile::<5>(layer, input, row, panel, weights, out),
            }
        }
    }

    /// Rows `first..first + ROWS` of one panel: `ROWS × 4` accumulators stay
    /// in registers for the whole depth. Each step loads the panel's four
    /// weight vectors once and broadcasts each row's four input bytes
    /// straight from memory (a load, not a shuffle that would compete with
    /// `vpdpbusd` for its port).
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
        assert!(first + ROWS <= input.rows() && input.depth == layer.depth);
        let sources: [*const u8; ROWS] = std::array::from_fn(|r| input.row(first + r).as_ptr());
        let mut sums: [[__m512i; 4]; ROWS] = [[_mm512_setzero_si512(); 4]; ROWS];
        for step in 0..steps {
            // SAFETY: each step's block holds PANEL·GROUP = 256 bytes and
            // each input row `depth` = steps·GROUP bytes (both asserted
            // above); unaligned loads are allowed.
            let (block, at) = (
                unsafe { weights.as_ptr().add(step * PANEL * GROUP) },
                step * GROUP,
            );
            let columns = unsafe {
                [
                    _mm512_loadu_si512(block.cast()),
                    _mm512_loadu_si512(block.add(64).cast()),
                    _mm512_loadu_si512(block.add(128).cast()),
                    _mm512_loadu_si512(block.add(192).cast()),
                ]
            };
            for (&source, sums) in sources.iter().zip(sums.iter_mut()) {
                // SAFETY: as above, `at + GROUP ≤ depth`.
                let group = unsafe { source.add(at).cast::<i32>().read_unaligned() };
                let broadcast = _mm512_set1_epi32(group);
                for (sum, column) in sums.iter_mut().zip(columns) {
                    *sum = _mm512_dpbusd_epi32(*sum, broadcast, column);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            finish(layer, input, first + r, panel, sums, out);
        }
    }

    /// [`PackedLinear::finish`] sixteen columns a step, from the registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn finish(
        layer: &PackedLinear,
        input: &QuantizedRows,
        row: usize,
        panel: usize,
        sums: &[__m512i; 4],
        out: &mut [f32],
    ) {
        let first = panel * PANEL;
        let columns = PANEL.min(layer.outputs - first);
        let scale = _mm512_set1_ps(input.scales[row]);
        let zero = _mm512_set1_epi32(input.zero_points[row]);
        let target = &mut out[row * layer.outputs + first..][..columns];
        // The per-column vectors are padded to whole panels.
        assert!(layer.sums.len() >= first + PANEL && layer.scales.len() >= first + PANEL);
        assert!(layer.bias.len() >= first + PANEL);
        for (part, &sum) in sums.iter().enumerate() {
            let at = part * 16;
            if at >= columns {
                break;
            }
            // SAFETY: the loads read 16 values inside the padded vectors
            // (asserted above); the store writes only the lanes inside
            // `target`.
            unsafe {
                let weight_sums = _mm512_loadu_si512(layer.sums.as_ptr().add(first + at).cast());
                let weight_scales = _mm512_loadu_ps(layer.scales.as_ptr().add(first + at));
                let bias = _mm512_loadu_ps(layer.bias.as_ptr().add(first + at));
                let exact = _mm512_sub_epi32(sum, _mm512_mullo_epi32(zero, weight_sums));
                let value = _mm512_add_ps(
                    _mm512_mul_ps(
                        _mm512_cvtepi32_ps(exact),
                        _mm512_mul_ps(scale, weight_scales),
                    ),
                    bias,
                );
                _mm512_mask_storeu_ps(target.as_mut_ptr().add(at), mask(columns, at), value);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "AVX2 intrinsics: pointer loads and calls into target-feature code"
)]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm_loadu_si128, _mm256_add_epi32, _mm256_add_ps, _mm256_cvtepi8_epi16,
        _mm256_cvtepi32_ps, _mm256_cvttps_epi32, _mm256_hadd_epi32, _mm256_loadu_ps,
        _mm256_loadu_si256, _mm256_madd_epi16, _mm256_max_epi32, _mm256_max_ps, _mm256_min_epi32,
        _mm256_min_ps, _mm256_mul_ps, _mm256_mullo_epi32, _mm256_packs_epi32, _mm256_packus_epi16,
        _mm256_permute4x64_epi64, _mm256_permutevar8x32_epi32, _mm256_set1_epi32,
        _mm256_set1_epi64x, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps,
        _mm256_setzero_si256, _mm256_storeu_ps, _mm256_storeu_si256, _mm256_sub_epi32,
    };

    use super::{GROUP, PANEL, PackedLinear, QuantizedRows, scale_and_zero};

    /// f32 values per 256-bit vector.
    const LANES: usize = 8;
    /// Output columns per tile: the 32-bit sums of one 256-bit vector.
    const TILE_COLUMNS: usize = 8;
    /// Input rows per register tile: 6 rows × 2 vectors of partial sums,
    /// 2 weight vectors and a broadcast fill 15 of the 16 vector registers.
    const TILE_ROWS: usize = 6;

    pub(super) fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// [`super::vectorized`] for AVX2.
    pub(super) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
        assert!(usable(), "AVX2 code needs AVX2");
        // SAFETY: the CPU has the features (checked above).
        unsafe { run_avx2(f) }
    }

    #[target_feature(enable = "avx2")]
    fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// [`super::quantize_row`] in AVX2: the same bytes, scale and zero
    /// point, 32 values a step.
    pub(super) fn quantize_row(row: &[f32], target: &mut [u8]) -> (f32, i32) {
        assert!(usable(), "the AVX2 quantizer needs AVX2");
        // SAFETY: the CPU has the features (checked above).
        unsafe { quantize_row_avx2(row, target) }
    }

    #[target_feature(enable = "avx2")]
    fn quantize_row_avx2(row: &[f32], target: &mut [u8]) -> (f32, i32) {
        assert!(target.len() >= row.len());
        let (mut low, mut high) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let whole = row.len() - row.len() % 32;
        for at in (0..whole).step_by(8) {
            // SAFETY: `at + 8 ≤ whole ≤ row.len()`.
            let values = unsafe { _mm256_loadu_ps(row.as_ptr().add(at)) };
            low = _mm256_min_ps(low, values);
            high = _mm256_max_ps(high, values);
        }
        let (mut lows, mut highs) = ([0.0_f32; LANES], [0.0_f32; LANES]);
        // SAFETY: each store writes eight values into an array of eight.
        unsafe {
            _mm256_storeu_ps(lows.as_mut_ptr(), low);
            _mm256_storeu_ps(highs.as_mut_ptr(), high);
        }
        let low = row[whole..]
            .iter()
            .chain(&lows)
            .fold(0.0_f32, |m, &v| m.min(v));
        let high = row[whole..]
            .iter()
            .chain(&highs)
            .fold(0.0_f32, |m, &v| m.max(v));
        let (scale, zero) = scale_and_zero(low, high);
        let (inverse, offset) = (_mm256_set1_ps(1.0 / scale), _mm256_set1_ps(zero));
        let half = _mm256_set1_ps(0.5);
        let (floor, ceiling) = (_mm256_setzero_si256(), _mm256_set1_epi32(255));
        // Bytes of `packus(packs(a, b), packs(c, d))` come per 128-bit half
        // as a0..3 b0..3 c0..3 d0..3 | a4..7 b4..7 c4..7 d4..7: this puts
        // each vector's eight back together.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for at in (0..whole).step_by(32) {
            let quantized: [__m256i; 4] = std::array::from_fn(|part| {
                // SAFETY: `at + 32 ≤ whole ≤ row.len()`.
                let values = unsafe { _mm256_loadu_ps(row.as_ptr().add(at + part * LANES)) };
                // `value · inverse + zero + 0.5`, truncated, in 0..=255:
                // the portable quantizer's arithmetic and saturation.
                let shifted =
                    _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(values, inverse), offset), half);
                let truncated = _mm256_cvttps_epi32(shifted);
                _mm256_min_epi32(_mm256_max_epi32(truncated, floor), ceiling)
            });
            let bytes = _mm256_permutevar8x32_epi32(
                _mm256_packus_epi16(
                    _mm256_packs_epi32(quantized[0], quantized[1]),
                    _mm256_packs_epi32(quantized[2], quantized[3]),
                ),
                order,
            );
            // SAFETY: `at + 32 ≤ row.len() ≤ target.len()`.
            unsafe { _mm256_storeu_si256(target.as_mut_ptr().add(at).cast(), bytes) };
        }
        let inverse = 1.0 / scale;
        for (q, &value) in target[whole..].iter_mut().zip(&row[whole..]) {
            *q = (value * inverse + zero + 0.5) as u8;
        }
        (scale, zero as i32)
    }

    pub(super) fn product(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        assert!(usable(), "the AVX2 kernel needs AVX2");
        // SAFETY: the CPU has the features `product_avx2` is compiled for
        // (checked above).
        unsafe { product_avx2(layer, input, out) }
    }

    /// The product in 16-bit multiplies. AVX2's byte multiply, `vpmaddubsw`,
    /// adds each pair of products in 16 bits with saturation, which 8-bit
    /// inputs (2 · 255 · 127) overflow; so the inputs are widened to 16 bits
    /// once per call, each step's weights as they are loaded, and
    /// `vpmaddwd` multiplies pairs into exact 32-bit sums: as many
    /// multiplying instructions per product as `vpmaddubsw` and its
    /// widening `vpmaddwd`, with nothing rounded away.
    #[target_feature(enable = "avx2")]
    fn product_avx2(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        let rows = input.rows();
        let wide: Vec<i16> = input.values[..rows * input.depth]
            .iter()
            .map(|&x| i16::from(x))
            .collect();
        for panel in 0..layer.panels() {
            let weights = layer.panel(panel);
            for part in 0..PANEL / TILE_COLUMNS {
                if panel * PANEL + part * TILE_COLUMNS >= layer.outputs {
                    break;
                }
                let mut row = 0;
                while row + TILE_ROWS <= rows {
                    tile::<TILE_ROWS>(layer, input, &wide, row, panel, part, weights, out);
                    row += TILE_ROWS;
                }
                match rows - row {
                    0 => {}
                    1 => tile::<1>(layer, input, &wide, row, panel, part, weights, out),
                    2 => tile::<2>(layer, input, &wide, row, panel, part, weights, out),
                    3 => tile::<3>(layer, input, &wide, row, panel, part, weights, out),
                    4 => tile::<4>(layer, input, &wide, row, panel, part, weights, out),
                    _ => tile::<5>(layer, input, &wide, row, panel, part, weights, out),
                }
            }
        }
    }

    /// Rows `first..first + ROWS` of columns `part · 8..part · 8 + 8` of one
    /// panel, the sums in registers for the whole depth. Each step widens
    /// the four weights of the eight columns (two vectors of four columns ×
    /// four inputs) and multiplies them by a row's four inputs (broadcast):
    /// `vpmaddwd` leaves each column's sums of inputs 0–1 and 2–3 side by
    /// side, added together once at the end.
    #[target_feature(enable = "avx2")]
    #[inline]
    #[expect(clippy::too_many_arguments, reason = "one tile's coordinates")]
    fn tile<const ROWS: usize>(
        layer: &PackedLinear,
        input: &QuantizedRows,
        wide: &[i16],
        first: usize,
        panel: usize,
        part: usize,
        weights: &[i8],
        out: &mut [f32],
    ) {
        let (steps, depth) = (layer.depth / GROUP, layer.depth);
        assert!(weights.len() == steps * PANEL * GROUP);
        assert!(first + ROWS <= input.rows() && input.depth == depth);
        assert!(wide.len() == input.rows() * depth);
        let sources: [*const i16; ROWS] =
            std::array::from_fn(|r| wide[(first + r) * depth..].as_ptr());
        let mut sums: [[__m256i; 2]; ROWS] = [[_mm256_setzero_si256(); 2]; ROWS];
        let offset = part * TILE_COLUMNS * GROUP;
        for step in 0..steps {
            // SAFETY: each step's block holds PANEL·GROUP = 256 bytes, of
            // which this part reads 32 from `offset` ≤ 224, and each wide
            // row `depth` = steps·GROUP values (asserted above); unaligned
            // loads are allowed.
            let (block, at) = (
                unsafe { weights.as_ptr().add(step * PANEL * GROUP + offset) },
                step * GROUP,
            );
            let columns = unsafe {
                [
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(block.cast())),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(16).cast())),
                ]
            };
            for (&source, sums) in sources.iter().zip(sums.iter_mut()) {
                // SAFETY: as above, `at + GROUP ≤ depth`.
                let group = unsafe { source.add(at).cast::<i64>().read_unaligned() };
                let broadcast = _mm256_set1_epi64x(group);
                for (sum, &column) in sums.iter_mut().zip(&columns) {
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(column, broadcast));
                }
            }
        }
        for (r, [low, high]) in sums.into_iter().enumerate() {
            // Lanes of the pair sums: columns 0,1,4,5 | 2,3,6,7 after the
            // horizontal add; the 64-bit permute puts them in order.
            let columns = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(low, high));
            finish(
                layer,
                input,
                first + r,
                panel * PANEL + part * TILE_COLUMNS,
                columns,
                out,
            );
        }
    }

    /// [`PackedLinear::finish`] for the eight columns from `first`, from
    /// the register of their sums.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn finish(
        layer: &PackedLinear,
        input: &QuantizedRows,
        row: usize,
        first: usize,
        sums: __m256i,
        out: &mut [f32],
    ) {
        let columns = TILE_COLUMNS.min(layer.outputs - first);
        let scale = _mm256_set1_ps(input.scales[row]);
        let zero = _mm256_set1_epi32(input.zero_points[row]);
        // The per-column vectors are padded to whole panels.
        assert!(layer.sums.len() >= first + TILE_COLUMNS);
        assert!(layer.scales.len() >= first + TILE_COLUMNS);
        assert!(layer.bias.len() >= first + TILE_COLUMNS);
        let mut values = [0.0_f32; TILE_COLUMNS];
        // SAFETY: the loads read 8 values inside the padded vectors
        // (asserted above); the store writes `values`, 8 long.
        unsafe {
            let weight_sums = _mm256_loadu_si256(layer.sums.as_ptr().add(first).cast());
            let weight_scales = _mm256_loadu_ps(layer.scales.as_ptr().add(first));
            let bias = _mm256_loadu_ps(layer.bias.as_ptr().add(first));
            let exact = _mm256_sub_epi32(sums, _mm256_mullo_epi32(zero, weight_sums));
            // Multiply, then add: the portable kernel's rounding, not a
            // fused multiply-add's.
            let value = _mm256_add_ps(
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(exact),
                    _mm256_mul_ps(scale, weight_scales),
                ),
                bias,
            );
            _mm256_storeu_ps(values.as_mut_ptr(), value);
        }
        out[row * layer.outputs + first..][..columns].copy_from_slice(&values[..columns]);
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[expect(
    unsafe_code,
    reason = "AMX: inline assembly (Rust has no stable AMX intrinsics), and the system call that lets this process use the tile registers"
)]
mod amx {
    use std::arch::asm;
    use std::sync::OnceLock;

    use super::{AMX_ROWS, DEPTH_STEP, GROUP, PANEL, PackedLinear, QuantizedRows};

    /// `arch_prctl` request: permission for an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    /// The extended state component of the tile data registers.
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    /// Bytes of one tile row: 64 uint8 inputs, or 16 int32 sums.
    const TILE_BYTES: usize = 64;

    /// Whether the CPU has AMX tiles with int8 products and Linux lets this
    /// process use them (asked once; Linux ≥ 5.16 requires the request).
    pub(super) fn usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            // CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
            let features = std::arch::x86_64::__cpuid_count(7, 0).edx;
            let cpu = features & (1 << 24) != 0 && features & (1 << 25) != 0;
            // SAFETY: this request only asks the kernel to save and restore
            // the tile registers for this process; it takes no pointers.
            cpu && unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            } == 0
        })
    }

    /// `ldtilecfg`'s 64-byte operand: palette 1, its eight tiles used as 16
    /// rows of 64 bytes. The fields of tiles 8 to 15 must stay zero (the
    /// instruction faults otherwise).
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        /// Bytes per row of tmm0..tmm15.
        row_bytes: [u16; 16],
        /// Rows of tmm0..tmm15.
        rows: [u8; 16],
    }

    impl TileConfig {
        fn sixteen_by_sixty_four() -> Self {
            let mut config = Self {
                palette: 1,
                start_row: 0,
                reserved: [0; 14],
                row_bytes: [0; 16],
                rows: [0; 16],
            };
            config.row_bytes[..8].fill(TILE_BYTES as u16);
            config.rows[..8].fill(AMX_ROWS as u8);
            config
        }
    }

    /// Sixteen input rows by the panel's 64 columns, as `tdpbusd` leaves them.
    #[repr(C, align(64))]
    struct Products([[i32; PANEL]; AMX_ROWS]);

    /// The product on tiles: for each panel and 16 input rows, tmm0..tmm3
    /// accumulate the panel's four 16-column blocks over the whole depth,
    /// 64 inputs a step (tmm4 the input rows, tmm5..tmm7 the weights).
    pub(super) fn product(layer: &PackedLinear, input: &QuantizedRows, out: &mut [f32]) {
        assert!(
            usable(),
            "the AMX kernel needs AMX tiles and the OS's leave"
        );
        let depth = layer.depth;
        assert!(depth.is_multiple_of(DEPTH_STEP) && input.depth == depth);
        let rows = input.rows();
        assert!(input.values.len() >= rows.next_multiple_of(AMX_ROWS) * depth);
        // Weight rows: one per GROUP inputs, PANEL columns of GROUP bytes.
        let weight_stride = PANEL * GROUP;
        let product_stride = PANEL * size_of::<i32>();
        let config = TileConfig::sixteen_by_sixty_four();
        let mut products = Products([[0; PANEL]; AMX_ROWS]);
        // SAFETY: the configuration is a valid palette-1 layout of 64 bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
        for panel in 0..layer.panels() {
            let weights = layer.panel(panel);
            assert!(weights.len() == depth / GROUP * weight_stride);
            for first in (0..rows).step_by(AMX_ROWS) {
                // SAFETY: tile registers only.
                unsafe {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                }
                for step in (0..depth).step_by(DEPTH_STEP) {
                    let inputs = input.values[first * depth + step..].as_ptr();
                    let block = weights[step / GROUP * weight_stride..].as_ptr();
                    // SAFETY: the input tile reads 16 rows of 64 bytes at a
                    // stride of `depth` from row `first`, inside `values`
                    // (padded to whole tiles, asserted above); each weight
                    // tile reads 16 rows of 64 bytes at a stride of 256
                    // from one of the panel's four column blocks, inside
                    // the panel (16 rows of 256 bytes from this step on).
                    unsafe {
                        asm!(
                            "tileloadd tmm4, [{inputs} + {depth}]",
                            "tileloadd tmm5, [{block} + {stride}]",
                            "tdpbusd tmm0, tmm4, tmm5",
                            "tileloadd tmm6, [{block} + {stride} + 64]",
                            "tdpbusd tmm1, tmm4, tmm6",
                            "tileloadd tmm7, [{block} + {stride} + 128]",
                            "tdpbusd tmm2, tmm4, tmm7",
                            "tileloadd tmm5, [{block} + {stride} + 192]",
                            "tdpbusd tmm3, tmm4, tmm5",
                            inputs = in(reg) inputs,
                            depth = in(reg) depth,
                            block = in(reg) block,
                            stride = in(reg) weight_stride,
                            options(nostack, readonly)
                        );
                    }
                }
                let target = products.0.as_mut_ptr().cast::<u8>();
                // SAFETY: `products` holds 16 rows of 256 bytes; each store
                // writes 16 rows of 64 bytes at a stride of 256 into one of
                // its four column blocks.
                unsafe {
                    asm!(
                        "tilestored [{target} + {stride}], tmm0",
                        "tilestored [{target} + {stride} + 64], tmm1",
                        "tilestored [{target} + {stride} + 128], tmm2",
                        "tilestored [{target} + {stride} + 192], tmm3",
                        target = in(reg) target,
                        stride = in(reg) product_stride,
                        options(nostack)
                    );
                }
                for (offset, sums) in products.0.iter().take(rows - first).enumerate() {
                    layer.finish(input, first + offset, panel, sums, out);
                }
            }
        }
        // SAFETY: returns the tile registers to their initial state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
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
    fn every_kernel_is_close_to_the_f32_product_for_odd_shapes() {
        // Neither dimension a multiple of the kernel's blocks, 7 rows.
        let (rows, inputs, outputs) = (7, 37, 70);
        let x = values(rows * inputs, 1);
        let w = values(outputs * inputs, 2);
        let b = values(outputs, 3);
        let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
        let expected = exact(&x, &w, &b, inputs);
        for kernel in Kernel::available() {
            let mut out = Vec::new();
            layer.forward(kernel, &x, &mut out);
            assert_eq!(out.len(), expected.len());
            for (got, want) in out.iter().zip(&expected) {
                assert!((got - want).abs() < 0.05, "{kernel:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn every_kernel_of_this_cpu_computes_the_same_values_as_the_portable_one() {
        let kernels = Kernel::available();
        eprintln!("kernels this CPU runs: {kernels:?}");
        for (rows, inputs, outputs) in [
            (1, 384, 384),
            (9, 384, 1152),
            (5, 1536, 384),
            (6, 37, 70),
            (37, 384, 1536),
            (16, 100, 64),
        ] {
            let x: Vec<f32> = values(rows * inputs, 4)
                .iter()
                .map(|v| v * 3.0 + 0.5)
                .collect();
            let w = values(outputs * inputs, 5);
            let b = values(outputs, 6);
            let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
            for &kernel in &kernels {
                // The kernel's own quantizer gives the portable one's bytes...
                let input = QuantizedRows::new(kernel, &x, rows, inputs, layer.depth);
                let mut bytes = vec![0_u8; layer.depth];
                for (row, values) in x.chunks_exact(inputs).enumerate() {
                    bytes.fill(0);
                    let (scale, zero) = quantize_row(values, &mut bytes);
                    assert_eq!(input.row(row), &bytes[..], "{kernel:?}: row {row}");
                    assert_eq!((input.scales[row], input.zero_points[row]), (scale, zero));
                }
                // ...and its product the portable loop's values from them.
                let mut portable = vec![0.0; rows * outputs];
                portable_product(&layer, &input, &mut portable);
                let mut fast = vec![0.0; rows * outputs];
                product(kernel, &layer, &input, &mut fast);
                assert_eq!(fast, portable, "{kernel:?}: {rows}×{inputs}→{outputs}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        assert!(PackedLinear::new(&[0.0; 6], &[0.0; 2], 4, 2).is_err());
        assert!(PackedLinear::new(&[0.0; 8], &[0.0; 3], 4, 2).is_err());
    }
}
