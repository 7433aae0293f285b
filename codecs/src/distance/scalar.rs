//! Portable scalar kernels: the reference every SIMD path is tested against, and the
//! fallback on CPUs without a SIMD path.
//!
//! All kernels read `min(a.len(), b.len())` elements (callers pass equal lengths; the
//! debug build asserts it). Eight independent accumulators keep the loops fast and let
//! the compiler vectorise them for the baseline target.

const LANES: usize = 8;

/// Squared Euclidean distance.
pub fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += (x - y) * (x - y);
    }
    sum
}

/// Inner product.
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    sum
}

/// Squared Euclidean distance between a `u8` vector and an `f32` vector.
pub fn l2_sqr_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            let d = f32::from(x[l]) - y[l];
            acc[l] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (&x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = f32::from(x) - y;
        sum += d * d;
    }
    sum
}

/// Inner product of a `u8` vector and an `f32` vector.
pub fn inner_product_u8_f32(a: &[u8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += f32::from(x[l]) * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (&x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += f32::from(x) * y;
    }
    sum
}

/// Squared Euclidean distance between two `u8` vectors, computed exactly in integers
/// (the `f32` result is exact below 2^24, i.e. for up to 258 dimensions).
pub fn l2_sqr_u8(a: &[u8], b: &[u8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = u64::from(x.abs_diff(y));
            d * d
        })
        .sum();
    sum as f32
}
