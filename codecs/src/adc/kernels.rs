//! Portable ADC kernels: the look-up sum unrolled for a fixed number of sub-quantizers
//! (`M` as a const generic) and `ksub = 256`, so every table index is a `u8` into a
//! `[f32; 256]` row and needs no bounds check, and four codes are summed at once with
//! independent accumulators for instruction-level parallelism.

use super::DistanceKernel;

/// The unrolled kernel for `(m, ksub)`, if one exists.
pub(super) fn unrolled(m: usize, ksub: usize) -> Option<DistanceKernel> {
    if ksub != 256 {
        return None;
    }
    Some(match m {
        4 => distances_fixed::<4>,
        8 => distances_fixed::<8>,
        12 => distances_fixed::<12>,
        16 => distances_fixed::<16>,
        20 => distances_fixed::<20>,
        24 => distances_fixed::<24>,
        32 => distances_fixed::<32>,
        48 => distances_fixed::<48>,
        64 => distances_fixed::<64>,
        _ => return None,
    })
}

/// Splits a table of `M × 256` floats into `M` fixed-size rows.
#[inline(always)]
fn rows<const M: usize>(lut: &[f32]) -> [&[f32; 256]; M] {
    std::array::from_fn(|sq| {
        let row = &lut[sq * 256..(sq + 1) * 256];
        // The slice has exactly 256 elements, so the conversion cannot fail.
        <&[f32; 256]>::try_from(row).unwrap_or(&[0.0; 256])
    })
}

#[inline(always)]
fn sum_code<const M: usize>(t: &[&[f32; 256]; M], code: &[u8]) -> f32 {
    // Two partial sums halve the dependency chain. Codes are read eight bytes at a time
    // and split with shifts, which keeps the load ports for the table look-ups.
    let mut a = 0.0f32;
    let mut b = 0.0f32;
    let mut sq = 0;
    while sq + 8 <= M {
        let mut w = u64::from_le_bytes([
            code[sq],
            code[sq + 1],
            code[sq + 2],
            code[sq + 3],
            code[sq + 4],
            code[sq + 5],
            code[sq + 6],
            code[sq + 7],
        ]);
        for j in 0..4 {
            a += t[sq + 2 * j][(w & 0xff) as usize];
            b += t[sq + 2 * j + 1][((w >> 8) & 0xff) as usize];
            w >>= 16;
        }
        sq += 8;
    }
    while sq + 1 < M {
        a += t[sq][usize::from(code[sq])];
        b += t[sq + 1][usize::from(code[sq + 1])];
        sq += 2;
    }
    if sq < M {
        a += t[sq][usize::from(code[sq])];
    }
    a + b
}

/// `out[i] = Σ_sq lut[sq][codes[i * M + sq]]`; caller guarantees `lut.len() == M * 256`
/// and `codes.len() == out.len() * M`.
fn distances_fixed<const M: usize>(lut: &[f32], codes: &[u8], out: &mut [f32]) {
    let t = rows::<M>(lut);
    let mut code_chunks = codes.chunks_exact(4 * M);
    let mut out_chunks = out.chunks_exact_mut(4);
    for (c4, o4) in (&mut code_chunks).zip(&mut out_chunks) {
        o4[0] = sum_code::<M>(&t, &c4[..M]);
        o4[1] = sum_code::<M>(&t, &c4[M..2 * M]);
        o4[2] = sum_code::<M>(&t, &c4[2 * M..3 * M]);
        o4[3] = sum_code::<M>(&t, &c4[3 * M..]);
    }
    for (c, o) in code_chunks
        .remainder()
        .chunks_exact(M)
        .zip(out_chunks.into_remainder())
    {
        *o = sum_code::<M>(&t, c);
    }
}
