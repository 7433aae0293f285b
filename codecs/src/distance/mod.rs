//! Distance kernels: squared L2 and inner product, scalar reference plus SIMD paths
//! picked once at run time.
//!
//! (Skeleton: scalar only; the SIMD paths and dispatch table are being added.)

/// Squared Euclidean distance. `a.len()` must equal `b.len()`.
#[inline]
pub fn l2_sqr(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Inner product. `a.len()` must equal `b.len()`.
#[inline]
pub fn inner_product(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
