//! Normalisations shared by the encoders: signed power law and L2 (used per block for
//! VLAD intra-normalisation, and globally). Zero vectors stay zero.

/// `x ← sign(x)·|x|^alpha` for every component (`alpha = 0.5` is the signed square root).
#[inline(always)]
pub(crate) fn power_law(v: &mut [f32], alpha: f32) {
    if alpha == 1.0 {
        return;
    }
    if alpha == 0.5 {
        for x in v.iter_mut() {
            *x = x.abs().sqrt().copysign(*x);
        }
    } else {
        for x in v.iter_mut() {
            *x = x.abs().powf(alpha).copysign(*x);
        }
    }
}

/// `Σ x²`, with eight independent accumulators so that it vectorises.
#[inline(always)]
pub(crate) fn sum_squares(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let whole = v.len() / 8 * 8;
    for c in v[..whole].chunks_exact(8) {
        for l in 0..8 {
            acc[l] += c[l] * c[l];
        }
    }
    acc.iter().sum::<f32>() + v[whole..].iter().map(|x| x * x).sum::<f32>()
}

/// Scales `v` to unit L2 norm; a zero vector is left as is. Returns the norm before.
#[inline(always)]
pub(crate) fn l2_normalize(v: &mut [f32]) -> f32 {
    let norm = sum_squares(v).sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        for x in v.iter_mut() {
            *x *= inv;
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_law_is_signed() {
        let mut v = [4.0f32, -9.0, 0.0, 2.0];
        power_law(&mut v, 0.5);
        assert_eq!(v, [2.0, -3.0, 0.0, 2.0f32.sqrt()]);
        let mut w = [8.0f32, -8.0];
        power_law(&mut w, 1.0 / 3.0);
        assert!((w[0] - 2.0).abs() < 1e-5 && (w[1] + 2.0).abs() < 1e-5);
    }

    #[test]
    fn l2_normalization() {
        let mut v = [3.0f32, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(sum_squares(&v), 25.0);
        let n = l2_normalize(&mut v);
        assert_eq!(n, 5.0);
        assert_eq!(v[..3], [0.6, 0.8, 0.0]);
        let mut z = [0.0f32; 3];
        assert_eq!(l2_normalize(&mut z), 0.0);
        assert_eq!(z, [0.0; 3]);
    }
}
