//! Fast-scan kernels for 4-bit product-quantizer codes: the block layout, packing, per-query
//! u8 look-up tables, and the SIMD scans that score 32 codes per in-register shuffle.
//!
//! A 4-bit PQ code has `m` sub-quantizers with 16 centroids each, so a sub-quantizer's
//! distance table has 16 entries and fits in one 128-bit register. Quantised to u8, a
//! single byte shuffle (`vpshufb` / `vpermb` on x86-64, `tbl` on aarch64) looks up 16
//! (NEON), 32 (AVX2) or 64 (AVX-512) codes at once; sums are exact integers (u16 lanes, or
//! u32 lanes in the VNNI kernel, reported as u16).
//!
//! # Block layout (what [`pack`] writes and every kernel reads)
//!
//! Let `m_pad = m + (m % 2)` (an odd `m` gets one padding sub-quantizer whose codes are
//! all 0 and whose table entries are ignored) and `P = m_pad / 2` sub-quantizer *pairs*.
//! Vectors are grouped in blocks of [`BLOCK`] = 32; the last block is padded with rows
//! whose codes are all 0 (padding rows are never reported by a scan).
//!
//! * The packed buffer is `ceil(n / 32)` blocks of `16 * m_pad` bytes each, back to back
//!   ([`packed_len`]); block `b` starts at byte `b * 16 * m_pad` and holds vectors
//!   `32 b .. 32 b + 31`.
//! * Inside a block, pair `p` (sub-quantizers `2p` and `2p + 1`) occupies the 32 bytes at
//!   offset `32 p`.
//! * Byte `i` of pair `p`, for `i` in `0..16`, holds the code of sub-quantizer `2p` of
//!   vector `32 b + i` in its low nibble and the code of sub-quantizer `2p` of vector
//!   `32 b + 16 + i` in its high nibble.
//! * Byte `16 + i` of pair `p`, for `i` in `0..16`, holds the same two vectors' codes of
//!   sub-quantizer `2p + 1` (vector `32 b + i` low nibble, vector `32 b + 16 + i` high nibble).
//!
//! In formulas: for vector `v = 32 b + 16 h + i` (`h` in `{0, 1}`, `i` in `0..16`) and
//! sub-quantizer `j = 2 p + s` (`s` in `{0, 1}`), the code is nibble `h` (0 = low bits 0–3,
//! 1 = high bits 4–7) of byte `b * 16 * m_pad + 32 p + 16 s + i`.
//!
//! Why this layout: a u8 table for sub-quantizers `j` has its 16 entries at `16 j`, so the
//! 32 table bytes of pair `p` are contiguous and line up with the 32 code bytes of pair `p`:
//! one 256-bit load of each gives an AVX2 shuffle whose low 128-bit lane scores
//! sub-quantizer `2p` and whose high lane scores `2p + 1`, for vectors 0–15 (low nibbles)
//! or 16–31 (high nibbles). AVX-512 loads two pairs (64 bytes) of codes and of table at
//! once (the VBMI kernel then transposes the 64 code bytes in-register with one `vpermb`),
//! NEON one 16-byte half of a pair at a time. Nothing is permuted in memory, so sums come
//! out in vector order.
//!
//! # Tables and sums
//!
//! A u8 table for `m` sub-quantizers has `16 m` (or `16 m_pad`) bytes, entry `16 j + c` being
//! the quantised distance term of centroid `c` of sub-quantizer `j`. A vector's sum is
//! `Σ_j table[16 j + code_j]` computed in u16 (mod 2^16). It is exact whenever
//! `m * max(table) <= 65535`, which [`QuantizedTables`] guarantees and [`scan`] checks for
//! `m > 257` (for `m <= 257` any u8 table fits).
//!
//! # Kernels
//!
//! [`scan`] and [`block_sums`] dispatch at run time to the best [`Kernel`] this CPU supports:
//! AVX-512 VBMI+VNNI (`vpermb` look-ups, `vpdpbusd` sums), else AVX-512BW (`vpshufb` on
//! 512 bits), else AVX2, else NEON, else scalar. [`scan_reference`] is the independent
//! scalar oracle that reads codes one nibble at a time. Each SIMD kernel compares a block's
//! 32 sums against the current threshold with vector compares, so a block without
//! candidates costs no per-vector branch.
//!
//! Measured on the project machine (AMD EPYC Zen 4, one thread, 8,192 codes in L2, best of
//! 20 interleaved rounds per kernel; the criterion bench is
//! `cargo bench -p vladdb-benches --bench fastscan`): m = 16 / 32 / 64 give
//! avx2 3.30 / 1.87 / 1.02, avx512 (`vpshufb`, two pairs per register) 3.04 / 1.86 / 1.05,
//! avx512vbmi 4.88 / 2.71 / 1.43 billion codes per second. Zen 4 splits 512-bit
//! instructions in two, so the plain 512-bit `vpshufb` kernel gains nothing there; the
//! `vpermb` kernel wins by needing 8 instructions per 128 look-ups instead of 11.

/// The two entry points every SIMD kernel module exposes, written once: `block_sums` and
/// the `scan` driver (blocks, threshold masks, reporting). Expanded inside each module so
/// that its own `block_vectors`, `threshold_mask` and `store` inline into one
/// `#[target_feature]` function.
macro_rules! kernel_entry_points {
    ($feature:literal, $isa:literal) => {
        /// # Safety
        #[doc = concat!($isa, " available; `table` has `>= 16 m` bytes and `block` `block_bytes(m)` bytes.")]
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn block_sums(
            table: &[u8],
            m: usize,
            block: &[u8],
            out: &mut [u16; super::BLOCK],
        ) {
            // SAFETY: forwarded contract.
            let sums = unsafe { block_vectors(table, m, block) };
            store(&sums, out);
        }

        /// # Safety
        #[doc = concat!($isa, " available; arguments validated by `check_scan_args`.")]
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn scan(
            table: &[u8],
            m: usize,
            packed: &[u8],
            n: usize,
            threshold: u16,
            hit: &mut impl FnMut(usize, u16) -> u16,
        ) {
            let mut threshold = threshold;
            let mut stored = [0u16; super::BLOCK];
            for (b, block) in packed.chunks_exact(super::block_bytes(m)).enumerate() {
                // SAFETY: validated lengths: the table has >= 16 m bytes, each chunk is one
                // block.
                let sums = unsafe { block_vectors(table, m, block) };
                let valid = super::valid_rows(n, b);
                let mask = threshold_mask(&sums, threshold) & valid;
                if mask != 0 {
                    store(&sums, &mut stored);
                    super::report_block(
                        mask,
                        valid,
                        &stored,
                        b * super::BLOCK,
                        &mut threshold,
                        hit,
                    );
                }
            }
        }
    };
}
pub(crate) use kernel_entry_points;

mod pack;
mod passes;
mod quantize;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512vbmi;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

pub use pack::{pack, pack_into, unpack};
pub use quantize::QuantizedTables;

use crate::error::{CodecError, Result};
use std::sync::OnceLock;

/// Vectors per block.
pub const BLOCK: usize = 32;

/// Largest `m` for which no u8 table can overflow the u16 sums (`257 * 255 = 65535`).
const M_ALWAYS_EXACT: usize = 257;

/// `m` rounded up to even (the number of sub-quantizers the layout stores).
pub fn padded_m(m: usize) -> usize {
    m + (m & 1)
}

/// Bytes of one block of 32 vectors: `16 * padded_m(m)` (saturating).
pub fn block_bytes(m: usize) -> usize {
    padded_m(m).saturating_mul(16)
}

/// Bytes of the packed form of `n` vectors of `m` sub-quantizers: whole blocks of 32
/// (padding rows are zero codes). Saturates at `usize::MAX` for absurd sizes, which no
/// buffer can match, so the functions taking a packed buffer reject them.
pub fn packed_len(n: usize, m: usize) -> usize {
    n.div_ceil(BLOCK).saturating_mul(block_bytes(m))
}

/// One implementation of the fast-scan kernels. [`available`] lists those this CPU runs;
/// calling a kernel the CPU lacks returns an error instead of executing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Portable Rust: 32 sums per block, then a scalar threshold mask.
    Scalar,
    /// AVX2 `vpshufb` on one sub-quantizer pair (32 code bytes) per instruction.
    Avx2,
    /// AVX-512BW `vpshufb` on two sub-quantizer pairs (64 code bytes) per instruction.
    Avx512,
    /// AVX-512 VBMI + VNNI: `vpermb` look-ups of four sub-quantizers at once, `vpdpbusd`
    /// sums (Ice Lake, Zen 4 and later).
    Avx512Vbmi,
    /// NEON `tbl` on 16 code bytes per instruction.
    Neon,
}

impl Kernel {
    /// Name of the instruction-set path: `"scalar"`, `"avx2"`, `"avx512"` or `"neon"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Avx512Vbmi => "avx512vbmi",
            Kernel::Neon => "neon",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vbmi => {
                Kernel::Avx512.is_supported()
                    && is_x86_feature_detected!("avx512vbmi")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// [`scan`] with this kernel.
    pub fn scan(
        self,
        table: &[u8],
        m: usize,
        packed: &[u8],
        n: usize,
        threshold: u16,
        mut hit: impl FnMut(usize, u16) -> u16,
    ) -> Result<()> {
        self.check_supported()?;
        check_scan_args(table, m, packed, n)?;
        let hit = &mut hit;
        match self {
            Kernel::Scalar => scalar::scan(table, m, packed, n, threshold, hit),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `check_supported` confirmed AVX2; `check_scan_args` validated the
            // table and packed lengths the kernel reads.
            Kernel::Avx2 => unsafe { avx2::scan(table, m, packed, n, threshold, hit) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `check_supported` confirmed AVX-512F/BW/VL; lengths validated above.
            Kernel::Avx512 => unsafe { avx512::scan(table, m, packed, n, threshold, hit) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `check_supported` confirmed AVX-512F/BW/VL/VBMI/VNNI; lengths validated.
            Kernel::Avx512Vbmi => unsafe { avx512vbmi::scan(table, m, packed, n, threshold, hit) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `check_supported` confirmed NEON; lengths validated above.
            Kernel::Neon => unsafe { neon::scan(table, m, packed, n, threshold, hit) },
            #[allow(unreachable_patterns)]
            _ => return Err(unsupported(self)),
        }
        Ok(())
    }

    /// [`block_sums`] with this kernel.
    pub fn block_sums(
        self,
        table: &[u8],
        m: usize,
        block: &[u8],
        out: &mut [u16; BLOCK],
    ) -> Result<()> {
        self.check_supported()?;
        check_table(table, m)?;
        if block.len() != block_bytes(m) {
            return Err(CodecError::DimensionMismatch {
                expected: block_bytes(m),
                got: block.len(),
            });
        }
        match self {
            Kernel::Scalar => scalar::block_sums(table, m, block, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 detected by `check_supported`; lengths validated above.
            Kernel::Avx2 => unsafe { avx2::block_sums(table, m, block, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F/BW/VL detected by `check_supported`; lengths validated above.
            Kernel::Avx512 => unsafe { avx512::block_sums(table, m, block, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F/BW/VL/VBMI/VNNI detected; lengths validated above.
            Kernel::Avx512Vbmi => unsafe { avx512vbmi::block_sums(table, m, block, out) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON detected by `check_supported`; lengths validated above.
            Kernel::Neon => unsafe { neon::block_sums(table, m, block, out) },
            #[allow(unreachable_patterns)]
            _ => return Err(unsupported(self)),
        }
        Ok(())
    }

    fn check_supported(self) -> Result<()> {
        if self.is_supported() {
            Ok(())
        } else {
            Err(unsupported(self))
        }
    }
}

fn unsupported(kernel: Kernel) -> CodecError {
    CodecError::InvalidParameter(format!(
        "fast-scan kernel {} is not supported by this CPU",
        kernel.name()
    ))
}

/// Every kernel this CPU runs, scalar first, fastest last.
pub fn available() -> Vec<Kernel> {
    [
        Kernel::Scalar,
        Kernel::Neon,
        Kernel::Avx2,
        Kernel::Avx512,
        Kernel::Avx512Vbmi,
    ]
    .into_iter()
    .filter(|k| k.is_supported())
    .collect()
}

/// The kernel [`scan`] and [`block_sums`] use (picked once).
pub fn best_kernel() -> Kernel {
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| available().last().copied().unwrap_or(Kernel::Scalar))
}

/// Which instruction set the dispatch picked: `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`.
pub fn kernel_name() -> &'static str {
    best_kernel().name()
}

/// Scans `n` packed vectors (`packed_len(n, m)` bytes, see the module docs for the layout)
/// with one u8 table of `16 m` or `16 padded_m(m)` bytes. For every vector `i`, in order,
/// whose u16 sum is `<=` the current threshold (initially `threshold`), calls `hit(i, sum)`,
/// whose return value becomes the threshold from then on (lower it to keep a top-k; raising
/// it is honoured too). Padding rows beyond `n` are never reported.
///
/// Errors: `m == 0`, a table or packed buffer of the wrong length, or `m > 257` with a table
/// whose largest entry could overflow the u16 sums.
pub fn scan(
    table: &[u8],
    m: usize,
    packed: &[u8],
    n: usize,
    threshold: u16,
    hit: impl FnMut(usize, u16) -> u16,
) -> Result<()> {
    best_kernel().scan(table, m, packed, n, threshold, hit)
}

/// The scalar oracle for [`scan`]: same contract, computed one vector and one nibble at a
/// time straight from the layout formula (shares no code with the kernels' block sums).
pub fn scan_reference(
    table: &[u8],
    m: usize,
    packed: &[u8],
    n: usize,
    threshold: u16,
    mut hit: impl FnMut(usize, u16) -> u16,
) -> Result<()> {
    check_scan_args(table, m, packed, n)?;
    let mut threshold = threshold;
    for i in 0..n {
        let mut sum = 0u16;
        for j in 0..m {
            let code = pack::code_at(packed, m, i, j);
            sum = sum.wrapping_add(u16::from(table[16 * j + usize::from(code)]));
        }
        if sum <= threshold {
            threshold = hit(i, sum);
        }
    }
    Ok(())
}

/// The 32 u16 sums of one packed block (`block_bytes(m)` bytes) against a u8 table, with the
/// best kernel. Errors on `m == 0` or wrong lengths. Padding rows get the sums of all-zero
/// codes.
pub fn block_sums(table: &[u8], m: usize, block: &[u8], out: &mut [u16; BLOCK]) -> Result<()> {
    best_kernel().block_sums(table, m, block, out)
}

/// Checks `m` and the table length (`16 m` or `16 padded_m(m)` bytes).
fn check_table(table: &[u8], m: usize) -> Result<()> {
    if m == 0 {
        return Err(CodecError::InvalidParameter(
            "fast scan needs at least one sub-quantizer (m >= 1)".into(),
        ));
    }
    let exact = m.saturating_mul(16);
    if table.len() != exact && table.len() != block_bytes(m) {
        return Err(CodecError::DimensionMismatch {
            expected: exact,
            got: table.len(),
        });
    }
    Ok(())
}

/// Validates a scan's arguments, including that the u16 sums cannot overflow.
fn check_scan_args(table: &[u8], m: usize, packed: &[u8], n: usize) -> Result<()> {
    check_table(table, m)?;
    if packed.len() != packed_len(n, m) {
        return Err(CodecError::DimensionMismatch {
            expected: packed_len(n, m),
            got: packed.len(),
        });
    }
    if m > M_ALWAYS_EXACT {
        let max_entry = table[..16 * m].iter().copied().max().unwrap_or(0);
        if u64::from(max_entry) * m as u64 > u64::from(u16::MAX) {
            return Err(CodecError::InvalidParameter(format!(
                "fast-scan table entries up to {max_entry} with m = {m} could overflow the \
                 u16 sums (need m * max entry <= 65535; quantize with QuantizedTables)"
            )));
        }
    }
    Ok(())
}

/// Mask of the rows of block `b` that are real vectors (not padding) when there are `n`.
#[inline(always)]
fn valid_rows(n: usize, block: usize) -> u32 {
    let remaining = n - block * BLOCK;
    if remaining >= BLOCK {
        u32::MAX
    } else {
        (1u32 << remaining) - 1
    }
}

/// Reports the candidate rows of one block, in order. `mask` has the rows whose sum was
/// `<= mask_threshold`; rows are re-checked against the live threshold, and if `hit` raises
/// it above `mask_threshold` the rest of the block is re-masked with the new value.
#[inline(always)]
fn report_block(
    mut mask: u32,
    valid: u32,
    sums: &[u16; BLOCK],
    base: usize,
    threshold: &mut u16,
    hit: &mut impl FnMut(usize, u16) -> u16,
) {
    let mut mask_threshold = *threshold;
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        let sum = sums[i];
        if sum <= *threshold {
            *threshold = hit(base + i, sum);
            if *threshold > mask_threshold {
                mask_threshold = *threshold;
                mask = 0;
                for (j, &s) in sums.iter().enumerate().skip(i + 1) {
                    if s <= mask_threshold {
                        mask |= 1 << j;
                    }
                }
                mask &= valid;
            }
        }
    }
}
