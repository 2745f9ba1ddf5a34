//! Every kernel this CPU runs against its portable twin, the portable one
//! against a plain f32 product, and the choice of kernel.

use super::*;

/// all-MiniLM-L6-v2's products as `(inputs, outputs)`: the stacked
/// attention projections, the attention output, the feed-forward up and
/// down.
const ENCODER_LAYERS: [(usize, usize); 4] = [(384, 1_152), (384, 384), (384, 1_536), (1_536, 384)];
/// Rows of a call: one token, a 12-token query, a batch that is no whole
/// number of register tiles (6) or AMX tiles (16).
const ENCODER_ROWS: [usize; 3] = [1, 12, 37];
/// Shapes that are no multiple of any block: the panels' and the tiles'
/// padding.
const ODD_SHAPES: [(usize, usize, usize); 3] = [(6, 37, 70), (7, 37, 70), (16, 100, 64)];

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

/// `(rows, inputs, outputs)` of the encoder's products and the odd shapes.
fn shapes() -> Vec<(usize, usize, usize)> {
    let encoder = ENCODER_LAYERS.iter().flat_map(|&(inputs, outputs)| {
        ENCODER_ROWS
            .iter()
            .map(move |&rows| (rows, inputs, outputs))
    });
    encoder.chain(ODD_SHAPES).collect()
}

/// A layer of random weights and inputs shaped like hidden states (not
/// centred on zero, so the zero points matter).
fn case(rows: usize, inputs: usize, outputs: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = values(rows * inputs, 4)
        .iter()
        .map(|v| v * 3.0 + 0.5)
        .collect();
    (x, values(outputs * inputs, 5), values(outputs, 6))
}

#[test]
fn the_portable_kernel_is_within_quantisation_error_of_the_f32_product() {
    for (rows, inputs, outputs) in shapes() {
        let (x, w, b) = case(rows, inputs, outputs);
        let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
        let mut out = Vec::new();
        layer.forward(Kernel::Portable, &x, &mut out);
        assert_eq!(out.len(), rows * outputs);
        for (row, (got_row, x_row)) in out
            .chunks_exact(outputs)
            .zip(x.chunks_exact(inputs))
            .enumerate()
        {
            // Each input is off by at most half its row's step, each weight
            // by half its output's step: |x̂ŵ − xw| ≤ |x|·sw/2 + |w|·sx/2 +
            // sx·sw/4 per term.
            let low = x_row.iter().fold(0.0_f32, |m, &v| m.min(v));
            let high = x_row.iter().fold(0.0_f32, |m, &v| m.max(v));
            let sx = (high - low) / 255.0;
            for (column, (&got, w_row)) in got_row.iter().zip(w.chunks_exact(inputs)).enumerate() {
                let sw = w_row.iter().fold(0.0_f32, |m, v| m.max(v.abs())) / 127.0;
                let want = x_row.iter().zip(w_row).map(|(a, c)| a * c).sum::<f32>() + b[column];
                let bound: f32 = x_row
                    .iter()
                    .zip(w_row)
                    .map(|(a, c)| a.abs() * sw / 2.0 + c.abs() * sx / 2.0 + sx * sw / 4.0)
                    .sum();
                // f32 rounding in the reference and the final conversion.
                let slack = 1e-5
                    * x_row
                        .iter()
                        .zip(w_row)
                        .map(|(a, c)| (a * c).abs())
                        .sum::<f32>();
                assert!(
                    (got - want).abs() <= bound + slack + 1e-6,
                    "{rows}×{inputs}→{outputs}, row {row}, column {column}: {got} vs {want} (bound {bound})"
                );
            }
        }
    }
}

#[test]
fn every_kernel_of_this_cpu_computes_the_same_values_as_the_portable_one() {
    let available = Kernel::available();
    for kernel in Kernel::ALL {
        if !available.contains(&kernel) {
            eprintln!("{kernel}: not run, this CPU lacks it");
        }
    }
    eprintln!("kernels this CPU runs: {available:?}");
    for (rows, inputs, outputs) in shapes() {
        let (x, w, b) = case(rows, inputs, outputs);
        let layer = PackedLinear::new(&w, &b, inputs, outputs).unwrap();
        let mut portable_out = Vec::new();
        layer.forward(Kernel::Portable, &x, &mut portable_out);
        for &kernel in &available {
            // The kernel's own quantizer gives the portable one's bytes...
            let input = QuantizedRows::new(kernel, &x, rows, inputs, layer.depth);
            let mut bytes = vec![0_u8; layer.depth];
            for (row, values) in x.chunks_exact(inputs).enumerate() {
                bytes.fill(0);
                let (scale, zero) = quantize_row(values, &mut bytes);
                assert_eq!(input.row(row), &bytes[..], "{kernel}: row {row}");
                assert_eq!((input.scales[row], input.zero_points[row]), (scale, zero));
            }
            // ...its product the portable loop's values from them...
            let mut portable = vec![0.0; rows * outputs];
            portable_product(&layer, &input, &mut portable);
            let mut fast = vec![0.0; rows * outputs];
            product(kernel, &layer, &input, &mut fast);
            assert_eq!(fast, portable, "{kernel}: {rows}×{inputs}→{outputs}");
            // ...and the whole layer the portable kernel's values.
            let mut out = Vec::new();
            layer.forward(kernel, &x, &mut out);
            assert_eq!(out, portable_out, "{kernel}: {rows}×{inputs}→{outputs}");
        }
    }
}

#[test]
fn available_lists_the_kernels_of_this_cpu_fastest_first() {
    let available = Kernel::available();
    assert_eq!(available.last(), Some(&Kernel::Portable));
    let order: Vec<Kernel> = Kernel::ALL
        .into_iter()
        .filter(|kernel| available.contains(kernel))
        .collect();
    assert_eq!(available, order);
    assert_eq!(Kernel::fastest(), available[0]);
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let vnni = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni");
        assert_eq!(available.contains(&Kernel::Avx2), avx2);
        assert_eq!(available.contains(&Kernel::Vnni), vnni);
    }
}

#[test]
fn the_variable_forces_each_kernel_this_cpu_runs() {
    let available = Kernel::available();
    for &kernel in &available {
        assert_eq!(Kernel::choose(Some(kernel.name()), &available), Ok(kernel));
        let shouted = format!(" {} ", kernel.name().to_uppercase());
        assert_eq!(Kernel::choose(Some(&shouted), &available), Ok(kernel));
    }
    for unset in [None, Some(""), Some("  ")] {
        assert_eq!(Kernel::choose(unset, &available), Ok(Kernel::fastest()));
    }
    // Every kernel, on a CPU that had them all.
    for kernel in Kernel::ALL {
        assert_eq!(
            Kernel::choose(Some(kernel.name()), &Kernel::ALL),
            Ok(kernel)
        );
    }
}

#[test]
fn a_kernel_the_cpu_lacks_or_an_unknown_name_is_an_error() {
    let avx2_only = [Kernel::Avx2, Kernel::Portable];
    assert_eq!(
        Kernel::choose(Some("amx"), &avx2_only),
        Err(Int8Error::Unavailable {
            kernel: Kernel::Amx,
            available: "avx2, portable".to_owned()
        })
    );
    assert!(Kernel::choose(Some("vnni"), &avx2_only).is_err());
    assert_eq!(
        Kernel::choose(Some("sse4"), &avx2_only),
        Err(Int8Error::UnknownKernel("sse4".to_owned()))
    );
    // The portable kernel runs everywhere.
    assert_eq!(Kernel::choose(Some("portable"), &[]), Ok(Kernel::Portable));
    assert_eq!(Kernel::choose(None, &[]), Ok(Kernel::Portable));
}

#[test]
fn detect_follows_the_variable_of_this_process() {
    // Read, never set: `PAI_INT8_KERNEL=avx2 cargo test` checks the switch.
    let setting = std::env::var(KERNEL_VAR).ok();
    let expected =
        Kernel::choose(setting.as_deref(), &Kernel::available()).unwrap_or(Kernel::fastest());
    assert_eq!(Kernel::detect(), expected);
}

#[test]
fn mismatched_shapes_are_an_error() {
    assert!(PackedLinear::new(&[0.0; 6], &[0.0; 2], 4, 2).is_err());
    assert!(PackedLinear::new(&[0.0; 8], &[0.0; 3], 4, 2).is_err());
}
