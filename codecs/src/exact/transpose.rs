//! In-register 16 x 16 transpose of 32-bit lanes (AVX-512), used by the packers to turn
//! 16 database rows into the column-major panel layout with a few permutes per element
//! instead of scattered scalar stores.

use std::arch::x86_64::*;

/// Permute indices of one butterfly stage with half-size `h`: lane `j` of the new row
/// `i` (`i & h == 0`) takes `a[j]` or `b[j - h]`; of row `i + h`, `a[j + h]` or `b[j]`
/// (indices >= 16 select from `b`).
const fn butterfly(h: usize) -> [[i32; 16]; 2] {
    let mut idx = [[0i32; 16]; 2];
    let mut j = 0;
    while j < 16 {
        if j & h == 0 {
            idx[0][j] = j as i32;
            idx[1][j] = (j + h) as i32;
        } else {
            idx[0][j] = (16 + j - h) as i32;
            idx[1][j] = (16 + j) as i32;
        }
        j += 1;
    }
    idx
}

const BUTTERFLY: [[[i32; 16]; 2]; 4] = [butterfly(8), butterfly(4), butterfly(2), butterfly(1)];

/// One butterfly stage over all row pairs `(i, i + H)`.
#[target_feature(enable = "avx512f")]
#[inline]
fn butterfly_stage<const H: usize, const S: usize>(m: &mut [__m512i; 16]) {
    // SAFETY: the tables are 64 readable bytes each.
    let (lo, hi) = unsafe {
        (
            _mm512_loadu_si512(BUTTERFLY[S][0].as_ptr().cast()),
            _mm512_loadu_si512(BUTTERFLY[S][1].as_ptr().cast()),
        )
    };
    for i in 0..16 {
        if i & H == 0 {
            let (a, b) = (m[i], m[i + H]);
            m[i] = _mm512_permutex2var_epi32(a, lo, b);
            m[i + H] = _mm512_permutex2var_epi32(a, hi, b);
        }
    }
}

/// Transposes 16 rows x 16 dwords in registers (`m[i]` lane `j` becomes `m[j]` lane `i`)
/// with four butterfly stages of two-source permutes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn transpose_16x16(m: &mut [__m512i; 16]) {
    butterfly_stage::<8, 0>(m);
    butterfly_stage::<4, 1>(m);
    butterfly_stage::<2, 2>(m);
    butterfly_stage::<1, 3>(m);
}
