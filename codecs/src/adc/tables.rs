//! Look-up table arithmetic for PQ: distances from a sub-vector to all centroids of a
//! sub-quantizer (transposed `dsub × ksub` layout), inner products, and the element-wise
//! table sum used with IVF precomputed tables.
//!
//! The loops are written once, generically, and compiled three times: plain (the
//! reference, x86-64 baseline SSE2 or whatever the target has), and on x86-64 inside
//! `#[target_feature]` wrappers for AVX2+FMA and AVX-512F+FMA, picked at run time. Only
//! the FMA variants use fused multiply-add, so results may differ from the reference in
//! the last bits (tests compare with a tolerance).

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Plain,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    #[cfg(target_arch = "x86_64")]
    Avx512Fma,
}

fn path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Path::Avx512Fma;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Path::Avx2Fma;
            }
        }
        Path::Plain
    })
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn l2_body<const FMA: bool>(t: &[f32], x: &[f32], out: &mut [f32]) {
    let ksub = out.len();
    out.fill(0.0);
    for (col, &xj) in t.chunks_exact(ksub).zip(x) {
        for (o, &c) in out.iter_mut().zip(col) {
            let d = xj - c;
            *o = madd::<FMA>(d, d, *o);
        }
    }
}

#[inline(always)]
fn ip_body<const FMA: bool>(t: &[f32], x: &[f32], scale: f32, init: &[f32], out: &mut [f32]) {
    // 16 centroids (4-bit fast scan) would leave nothing for 64-wide blocks.
    if out.len() < 64 {
        ip_blocks::<FMA, 16>(t, x, scale, init, out)
    } else {
        ip_blocks::<FMA, 64>(t, x, scale, init, out)
    }
}

#[inline(always)]
fn ip_blocks<const FMA: bool, const W: usize>(
    t: &[f32],
    x: &[f32],
    scale: f32,
    init: &[f32],
    out: &mut [f32],
) {
    let ksub = out.len();
    let full = ksub / W * W;
    // Blocks of `W` outputs stay in registers across the whole `x` loop.
    let mut c0 = 0;
    while c0 < full {
        let mut acc = [0.0f32; W];
        if init.is_empty() {
            acc.fill(0.0);
        } else {
            acc.copy_from_slice(&init[c0..c0 + W]);
        }
        for (j, &xj) in x.iter().enumerate() {
            let s = xj * scale;
            let col = &t[j * ksub + c0..j * ksub + c0 + W];
            for (a, &c) in acc.iter_mut().zip(col) {
                *a = madd::<FMA>(s, c, *a);
            }
        }
        out[c0..c0 + W].copy_from_slice(&acc);
        c0 += W;
    }
    for c in full..ksub {
        let mut a = if init.is_empty() { 0.0 } else { init[c] };
        for (j, &xj) in x.iter().enumerate() {
            a = madd::<FMA>(xj * scale, t[j * ksub + c], a);
        }
        out[c] = a;
    }
}

#[inline(always)]
fn add_body(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn l2_avx2(t: &[f32], x: &[f32], out: &mut [f32]) {
        super::l2_body::<true>(t, x, out)
    }
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn l2_avx512(t: &[f32], x: &[f32], out: &mut [f32]) {
        super::l2_body::<true>(t, x, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn l2_tables_avx2(t: &[f32], x: &[f32], dsub: usize, out: &mut [f32]) {
        super::l2_tables_body::<true>(t, x, dsub, out)
    }
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn l2_tables_avx512(t: &[f32], x: &[f32], dsub: usize, out: &mut [f32]) {
        super::l2_tables_body::<true>(t, x, dsub, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn ip_avx2(t: &[f32], x: &[f32], scale: f32, init: &[f32], out: &mut [f32]) {
        super::ip_body::<true>(t, x, scale, init, out)
    }
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn ip_avx512(t: &[f32], x: &[f32], scale: f32, init: &[f32], out: &mut [f32]) {
        super::ip_body::<true>(t, x, scale, init, out)
    }
    #[target_feature(enable = "avx2")]
    pub(super) fn add_avx2(a: &[f32], b: &[f32], out: &mut [f32]) {
        super::add_body(a, b, out)
    }
    #[target_feature(enable = "avx512f")]
    pub(super) fn add_avx512(a: &[f32], b: &[f32], out: &mut [f32]) {
        super::add_body(a, b, out)
    }
}

/// `out[c] = Σ_j (x[j] − t[j · ksub + c])²` for `c < ksub = out.len()`, where `t` is a
/// transposed `x.len() × ksub` block of centroids.
pub fn l2_table(t: &[f32], x: &[f32], out: &mut [f32]) {
    match path() {
        Path::Plain => l2_body::<false>(t, x, out),
        // SAFETY: `path()` returns this variant only after run-time detection of the
        // features the wrapper enables.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2Fma => unsafe { x86::l2_avx2(t, x, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Fma => unsafe { x86::l2_avx512(t, x, out) },
    }
}

/// [`l2_table`] for every sub-quantizer at once: `t` holds `m` transposed `dsub × ksub`
/// blocks back to back, `x` the `m · dsub` values, `out` the `m · ksub` distances. One
/// dispatch for the whole table (fast-scan tables have 16 entries per sub-quantizer, so a
/// call per sub-quantizer cost more than its arithmetic).
pub fn l2_tables(t: &[f32], x: &[f32], dsub: usize, out: &mut [f32]) {
    match path() {
        Path::Plain => l2_tables_body::<false>(t, x, dsub, out),
        // SAFETY: features detected at run time (see `path`).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2Fma => unsafe { x86::l2_tables_avx2(t, x, dsub, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Fma => unsafe { x86::l2_tables_avx512(t, x, dsub, out) },
    }
}

#[inline(always)]
fn l2_tables_body<const FMA: bool>(t: &[f32], x: &[f32], dsub: usize, out: &mut [f32]) {
    let m = x.len().checked_div(dsub).unwrap_or(0);
    if m == 0 {
        return;
    }
    let ksub = out.len() / m;
    for ((block, xs), row) in t
        .chunks_exact(dsub * ksub)
        .zip(x.chunks_exact(dsub))
        .zip(out.chunks_exact_mut(ksub))
    {
        l2_body::<FMA>(block, xs, row);
    }
}

/// [`l2_table`] with the reference (non-FMA, non-dispatched) loop.
pub fn l2_table_reference(t: &[f32], x: &[f32], out: &mut [f32]) {
    l2_body::<false>(t, x, out)
}

/// `out[c] = init[c] + scale · Σ_j x[j] · t[j · ksub + c]` for `c < ksub = out.len()`;
/// an empty `init` means zeros (otherwise `init.len() == out.len()`).
pub fn ip_table(t: &[f32], x: &[f32], scale: f32, init: &[f32], out: &mut [f32]) {
    match path() {
        Path::Plain => ip_body::<false>(t, x, scale, init, out),
        // SAFETY: features detected at run time (see `path`).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2Fma => unsafe { x86::ip_avx2(t, x, scale, init, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Fma => unsafe { x86::ip_avx512(t, x, scale, init, out) },
    }
}

/// [`ip_table`] with the reference loop.
pub fn ip_table_reference(t: &[f32], x: &[f32], scale: f32, init: &[f32], out: &mut [f32]) {
    ip_body::<false>(t, x, scale, init, out)
}

/// `out[i] = a[i] + b[i]` (over the shortest of the three).
pub fn add_tables(a: &[f32], b: &[f32], out: &mut [f32]) {
    match path() {
        Path::Plain => add_body(a, b, out),
        // SAFETY: features detected at run time (see `path`).
        #[cfg(target_arch = "x86_64")]
        Path::Avx2Fma => unsafe { x86::add_avx2(a, b, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Fma => unsafe { x86::add_avx512(a, b, out) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SeededRng;

    #[test]
    fn dispatched_tables_agree_with_the_reference() {
        let mut rng = SeededRng::new(4);
        for (dsub, ksub) in [(8usize, 256usize), (4, 16), (3, 256), (16, 64), (2, 100)] {
            let t: Vec<f32> = (0..dsub * ksub)
                .map(|_| rng.next_f64() as f32 * 100.0)
                .collect();
            let x: Vec<f32> = (0..dsub).map(|_| rng.next_f64() as f32 * 100.0).collect();
            let (mut a, mut b) = (vec![0.0; ksub], vec![0.0; ksub]);
            l2_table(&t, &x, &mut a);
            l2_table_reference(&t, &x, &mut b);
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
            }
            let init: Vec<f32> = (0..ksub).map(|i| i as f32).collect();
            for init in [&[][..], &init[..]] {
                ip_table(&t, &x, -2.0, init, &mut a);
                ip_table_reference(&t, &x, -2.0, init, &mut b);
                for (c, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
                    let want: f32 = init.get(c).copied().unwrap_or(0.0)
                        - 2.0 * (0..dsub).map(|j| x[j] * t[j * ksub + c]).sum::<f32>();
                    assert!(
                        (q - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "{q} vs {want}"
                    );
                }
            }
            // All sub-quantizers at once = one call per sub-quantizer.
            let m = 3;
            let tt: Vec<f32> = (0..m * dsub * ksub)
                .map(|i| t[i % t.len()] + i as f32)
                .collect();
            let xx: Vec<f32> = (0..m * dsub).map(|i| x[i % dsub] - i as f32).collect();
            let (mut whole, mut parts) = (vec![0.0; m * ksub], vec![0.0; m * ksub]);
            l2_tables(&tt, &xx, dsub, &mut whole);
            for sq in 0..m {
                l2_table(
                    &tt[sq * dsub * ksub..(sq + 1) * dsub * ksub],
                    &xx[sq * dsub..(sq + 1) * dsub],
                    &mut parts[sq * ksub..(sq + 1) * ksub],
                );
            }
            assert_eq!(whole, parts);
            let mut s = vec![0.0; ksub];
            add_tables(&a, &b, &mut s);
            for ((v, p), q) in s.iter().zip(&a).zip(&b) {
                assert_eq!(*v, p + q);
            }
        }
    }
}
