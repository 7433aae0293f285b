//! Normalisations shared by the encoders: signed power law, per-block (intra) L2 and
//! global L2. Zero vectors and blocks stay zero.

/// `x ← sign(x)·|x|^alpha` for every component (`alpha = 0.5` is the signed square root).
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

/// Scales `v` to unit L2 norm; a zero vector is left as is. Returns the norm before.
pub(crate) fn l2_normalize(v: &mut [f32]) -> f32 {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        for x in v.iter_mut() {
            *x *= inv;
        }
    }
    norm as f32
}

/// L2-normalises each consecutive block of `block` components separately.
pub(crate) fn intra_normalize(v: &mut [f32], block: usize) {
    if block == 0 {
        return;
    }
    for b in v.chunks_exact_mut(block) {
        l2_normalize(b);
    }
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
    fn l2_and_intra() {
        let mut v = [3.0f32, 4.0, 0.0, 0.0, 0.0, 2.0];
        intra_normalize(&mut v, 2);
        assert_eq!(v, [0.6, 0.8, 0.0, 0.0, 0.0, 1.0]);
        let n = l2_normalize(&mut v);
        assert!((n - 2.0f32.sqrt()).abs() < 1e-6);
        let mut z = [0.0f32; 3];
        assert_eq!(l2_normalize(&mut z), 0.0);
        assert_eq!(z, [0.0; 3]);
    }
}
