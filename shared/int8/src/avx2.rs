//! The AVX2 kernel (`vpmaddwd` on inputs widened to 16 bits), its row
//! quantizer and the AVX2 runner of [`crate::vectorized`].

// Intrinsics read through raw pointers and call functions compiled for
// features the baseline lacks; each `unsafe` block says why it holds.
#![expect(
    unsafe_code,
    reason = "AVX2 intrinsics: pointer loads and calls into target-feature code"
)]

use std::arch::x86_64::{
    __m256i, _mm_loadu_si128, _mm256_add_epi32, _mm256_add_ps, _mm256_cvtepi8_epi16,
    _mm256_cvtepi32_ps, _mm256_cvttps_epi32, _mm256_hadd_epi32, _mm256_loadu_ps,
    _mm256_loadu_si256, _mm256_madd_epi16, _mm256_max_epi32, _mm256_max_ps, _mm256_min_epi32,
    _mm256_min_ps, _mm256_mul_ps, _mm256_mullo_epi32, _mm256_packs_epi32, _mm256_packus_epi16,
    _mm256_permute4x64_epi64, _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_set1_epi64x,
    _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_setzero_si256, _mm256_storeu_ps,
    _mm256_storeu_si256, _mm256_sub_epi32,
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
    let sources: [*const i16; ROWS] = std::array::from_fn(|r| wide[(first + r) * depth..].as_ptr());
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
        // SAFETY: the two loads read 32 bytes from `block`, inside the
        // step's 256 (see above); unaligned loads are allowed.
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
