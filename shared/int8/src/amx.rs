//! The AMX kernel (`tdpbusd` on 16×64-byte tiles, 16,384 multiply-adds an
//! instruction), on Linux, which must first let the process use the tiles.

// Rust has no stable AMX intrinsics, so the tiles are driven by inline
// assembly, and Linux (≥ 5.16) hands them out only on a system call; each
// `unsafe` block says why it holds.
#![expect(
    unsafe_code,
    reason = "AMX: inline assembly (Rust has no stable AMX intrinsics), and the system call that lets this process use the tile registers"
)]

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
