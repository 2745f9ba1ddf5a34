//! The AVX-512 VNNI kernel (`vpdpbusd`, 64 multiply-adds an instruction),
//! its row quantizer and the AVX-512 runner of [`crate::map_in_place`].

// Intrinsics read through raw pointers and call functions compiled for
// features the baseline lacks; each `unsafe` block says why it holds.
#![expect(
    unsafe_code,
    reason = "AVX-512 intrinsics: pointer loads and calls into target-feature code"
)]

use std::arch::x86_64::{
    __m512i, __mmask16, _mm512_add_ps, _mm512_cvtepi32_ps, _mm512_cvttps_epi32,
    _mm512_dpbusd_epi32, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_cvtusepi32_storeu_epi8,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_epi32, _mm512_max_ps, _mm512_min_ps,
    _mm512_mul_ps, _mm512_mullo_epi32, _mm512_reduce_max_ps, _mm512_reduce_min_ps,
    _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps, _mm512_setzero_si512, _mm512_sub_epi32,
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
        let values = unsafe { _mm512_maskz_loadu_ps(mask(row.len(), at), row.as_ptr().add(at)) };
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
            _mm512_mask_cvtusepi32_storeu_epi8(target.as_mut_ptr().add(at).cast(), lanes, whole);
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
        // SAFETY: the four loads read the step's 256 bytes from `block`
        // (asserted above); unaligned loads are allowed.
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
