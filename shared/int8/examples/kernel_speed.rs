//! The int8 product's kernels side by side on the encoder's layer shapes:
//! time per call and multiply-adds per second, each as a ratio to the
//! slowest of them (AVX2 where the CPU has it) in the same run.
//!
//! ```text
//! cargo run --release -p pai-int8 --example kernel_speed
//! ```

use std::time::Instant;

use pai_int8::{Kernel, PackedLinear};

/// A deterministic spread of values in −scale..scale.
fn values(count: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..count)
        .map(|i| ((i * 7_919 + seed * 104_729) % 1_000) as f32 / 500.0 - 1.0)
        .map(|v| v * scale)
        .collect()
}

fn main() -> anyhow::Result<()> {
    // Slowest first: the others' ratios are to it.
    let kernels: Vec<Kernel> = Kernel::available()
        .into_iter()
        .rev()
        .filter(|k| *k != Kernel::Portable)
        .collect();
    println!("kernels: {kernels:?} (the portable one is ~30× slower and left out)");
    // all-MiniLM-L6-v2's products: the stacked attention projections, the
    // attention output, the feed-forward up and down.
    for (inputs, outputs) in [(384, 1_152), (384, 384), (384, 1_536), (1_536, 384)] {
        let layer = PackedLinear::new(
            &values(inputs * outputs, 1, 0.1),
            &values(outputs, 2, 0.1),
            inputs,
            outputs,
        )?;
        // One 12-token query, a batch of queries, a long chunk.
        for rows in [12, 96, 236] {
            let x = values(rows * inputs, 3, 2.0);
            let mut out = Vec::new();
            let mut slowest = None;
            for &kernel in &kernels {
                layer.forward(kernel, &x, &mut out);
                let calls = 200;
                let started = Instant::now();
                for _ in 0..calls {
                    layer.forward(kernel, &x, &mut out);
                }
                let seconds = started.elapsed().as_secs_f64() / f64::from(calls);
                let (base, base_seconds) = *slowest.get_or_insert((kernel, seconds));
                let ratio = format!(", {:.2}× {base:?}", base_seconds / seconds);
                println!(
                    "{inputs:>5}→{outputs:<5} {rows:>3} rows  {kernel:?}: {:>8.1} µs, {:>4.0} G multiply-adds/s{ratio}",
                    seconds * 1e6,
                    (rows * inputs * outputs) as f64 / seconds / 1e9,
                );
            }
        }
    }
    Ok(())
}
