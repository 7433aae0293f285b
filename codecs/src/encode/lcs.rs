//! VLAD local coordinate systems (LCS, Delhumeau et al., *Revisiting the VLAD image
//! representation*, 2013): one rotation per visual word, the principal axes of the
//! residuals `x − c_k` of the training descriptors assigned to that word.
//!
//! A VLAD block is rotated into its word's basis before the power law. The rotation is
//! orthonormal, so it changes neither block norms nor inner products by itself; what it
//! changes is what the component-wise power law acts on: decorrelated directions sorted
//! by variance instead of the SIFT bins, which makes the power law's burstiness damping
//! act along the directions in which residuals actually vary.

use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::linalg::sym_eigen;

/// One rotation per word from the residuals of `sample` (raw descriptors, rows of `dim`,
/// each passed through `preprocess` before use) around their assigned words (`assign`,
/// one per row) among the `k × dim` `centroids`: the eigenvectors of the residual
/// covariance as rows, largest eigenvalue first; the identity for a word with fewer than
/// two residuals. Residuals are L2-normalised first when `residual_norm` is set (as the
/// encoder will aggregate them). Words are processed in parallel, each over its rows in
/// sample order, so the result does not depend on the thread count. Returns
/// `k × dim × dim` floats.
pub(crate) fn local_rotations(
    sample: &[f32],
    assign: &[u32],
    centroids: &[f32],
    dim: usize,
    residual_norm: bool,
    preprocess: impl Fn(&mut [f32]) + Sync,
) -> Result<Vec<f32>> {
    let k = centroids.len() / dim;
    // Rows of each word, by counting sort (stable: sample order within a word).
    let mut starts = vec![0usize; k + 1];
    for &a in assign {
        starts[a as usize + 1] += 1;
    }
    for w in 0..k {
        starts[w + 1] += starts[w];
    }
    let mut fill = starts.clone();
    let mut members = vec![0usize; assign.len()];
    for (i, &a) in assign.iter().enumerate() {
        members[fill[a as usize]] = i;
        fill[a as usize] += 1;
    }
    let per_word: Vec<Vec<f32>> = (0..k)
        .into_par_iter()
        .map(|w| {
            let rows = &members[starts[w]..starts[w + 1]];
            let centroid = &centroids[w * dim..(w + 1) * dim];
            let cov = residual_covariance(sample, rows, centroid, residual_norm, &preprocess);
            match cov {
                None => {
                    let mut eye = vec![0.0f32; dim * dim];
                    for i in 0..dim {
                        eye[i * dim + i] = 1.0;
                    }
                    Ok(eye)
                }
                Some(cov) => {
                    let eig = sym_eigen(cov, dim)?;
                    Ok(eig.vectors.iter().map(|&v| v as f32).collect())
                }
            }
        })
        .collect::<Result<_>>()?;
    Ok(per_word.concat())
}

/// Covariance (`dim × dim`, `f64`) of the residuals of `rows` of `sample` around
/// `centroid`, or `None` for fewer than two rows.
fn residual_covariance(
    sample: &[f32],
    rows: &[usize],
    centroid: &[f32],
    residual_norm: bool,
    preprocess: &(impl Fn(&mut [f32]) + Sync),
) -> Option<Vec<f64>> {
    if rows.len() < 2 {
        return None;
    }
    let dim = centroid.len();
    let mut x = vec![0.0f32; dim];
    let mut r = vec![0.0f64; dim];
    let mut mean = vec![0.0f64; dim];
    let mut cov = vec![0.0f64; dim * dim];
    for &i in rows {
        x.copy_from_slice(&sample[i * dim..(i + 1) * dim]);
        preprocess(&mut x);
        for ((d, &xv), &cv) in r.iter_mut().zip(&x).zip(centroid) {
            *d = f64::from(xv - cv);
        }
        if residual_norm {
            let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                r.iter_mut().for_each(|v| *v /= norm);
            }
        }
        for (a, &ra) in r.iter().enumerate() {
            mean[a] += ra;
            // Upper triangle only; mirrored below.
            for (s, &rb) in cov[a * dim + a..(a + 1) * dim].iter_mut().zip(&r[a..]) {
                *s += ra * rb;
            }
        }
    }
    let inv = 1.0 / rows.len() as f64;
    mean.iter_mut().for_each(|m| *m *= inv);
    for a in 0..dim {
        for b in a..dim {
            let c = cov[a * dim + b] * inv - mean[a] * mean[b];
            cov[a * dim + b] = c;
            cov[b * dim + a] = c;
        }
    }
    Some(cov)
}

/// Checks stored rotations: `k` orthonormal-sized `dim × dim` blocks of finite values.
pub(crate) fn check_rotations(rotations: &[f32], k: usize, dim: usize) -> Result<()> {
    if rotations.len() != k * dim * dim {
        return Err(CodecError::DimensionMismatch {
            expected: k * dim * dim,
            got: rotations.len(),
        });
    }
    if let Some(pos) = rotations.iter().position(|v| !v.is_finite()) {
        return Err(CodecError::NonFinite { row: pos / dim });
    }
    Ok(())
}

/// Rotations transposed per word (`k` blocks of `dim × dim`): row `j` of a word's block
/// is column `j` of its rotation, the layout [`rotate_group`] streams.
pub(crate) fn transpose_rotations(rotations: &[f32], dim: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rotations.len()];
    if dim == 0 {
        return out;
    }
    for (src, dst) in rotations
        .chunks_exact(dim * dim)
        .zip(out.chunks_exact_mut(dim * dim))
    {
        for (i, row) in src.chunks_exact(dim).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                dst[j * dim + i] = v;
            }
        }
    }
    out
}

/// Blocks [`rotate_group`] rotates together.
pub(crate) const GROUP: usize = 4;

/// Rotates up to [`GROUP`] blocks of one word at once: `outputs[g] = R · inputs[g]` for
/// the `dim × dim` rotation `R` given transposed (`rotation_t`, see
/// [`transpose_rotations`]); `inputs` and `outputs` hold the same whole number (1 to
/// [`GROUP`]) of `dim`-float blocks, block after block.
///
/// Computed as `Σ_j inputs[g][j] · Rᵀ[j]` over tiles of output columns, so that the
/// group's sums stay in vector registers and each row of `Rᵀ` is read once for all
/// blocks of the group (the encoder's word-major batch loop feeds it every image of a
/// batch that uses the word). Every output is summed over `j` in order, one multiply and
/// one add per term (no fused multiply-add), so the AVX-512, AVX2 and portable paths give
/// the same bits; [`rotate_group_portable`] is the reference.
pub(crate) fn rotate_group(rotation_t: &[f32], dim: usize, inputs: &[f32], outputs: &mut [f32]) {
    let blocks = inputs.len() / dim.max(1);
    assert!(
        dim > 0
            && rotation_t.len() == dim * dim
            && inputs.len() == blocks * dim
            && outputs.len() == inputs.len()
            && (1..=GROUP).contains(&blocks),
        "rotate_group: shapes"
    );
    match blocks {
        1 => rotate_group_of::<1>(rotation_t, dim, inputs, outputs),
        2 => rotate_group_of::<2>(rotation_t, dim, inputs, outputs),
        3 => rotate_group_of::<3>(rotation_t, dim, inputs, outputs),
        _ => rotate_group_of::<GROUP>(rotation_t, dim, inputs, outputs),
    }
}

/// [`rotate_group`] for exactly `G` blocks (shapes checked by the caller).
fn rotate_group_of<const G: usize>(
    rotation_t: &[f32],
    dim: usize,
    inputs: &[f32],
    outputs: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if dim.is_multiple_of(16) && is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above; the caller checked the shapes.
            unsafe { x86::rotate_group_avx512::<G>(rotation_t, dim, inputs, outputs) };
            return;
        }
        if dim.is_multiple_of(8) && is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above; the caller checked the shapes.
            unsafe { x86::rotate_group_avx2::<G>(rotation_t, dim, inputs, outputs) };
            return;
        }
    }
    rotate_group_portable(rotation_t, dim, inputs, outputs);
}

/// Scalar reference of [`rotate_group`] (and its path on other CPUs and dimensions).
pub(crate) fn rotate_group_portable(
    rotation_t: &[f32],
    dim: usize,
    inputs: &[f32],
    outputs: &mut [f32],
) {
    for (x, out) in inputs.chunks_exact(dim).zip(outputs.chunks_exact_mut(dim)) {
        for (o, y) in out.iter_mut().enumerate() {
            let mut s = 0.0f32;
            for (j, &v) in x.iter().enumerate() {
                s += v * rotation_t[j * dim + o];
            }
            *y = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86 register-tiled paths of [`super::rotate_group`], one macro for both widths.
    use std::arch::x86_64::*;

    /// Defines `fn $name::<G>(rotation_t, dim, inputs, outputs)` for one vector width:
    /// tiles of two registers of output columns per block (`2 G` sums in registers), then
    /// a one-register tile if one is left (`dim` is a multiple of the register's lanes).
    macro_rules! rotate_kernel {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal, $zero:ident,
         $load:ident, $store:ident, $set1:ident, $add:ident, $mul:ident) => {
            $(#[$doc])*
            ///
            /// # Safety
            #[doc = concat!("The CPU must support ", $feature, "; `dim` is a multiple of ", $lanes, ",")]
            /// `rotation_t` is `dim × dim` and `inputs` / `outputs` hold `G × dim` floats
            /// (checked by the caller).
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name<const G: usize>(
                rt: &[f32],
                dim: usize,
                inputs: &[f32],
                outputs: &mut [f32],
            ) {
                /// Output columns `t..t + R · lanes` of every block of the group.
                ///
                /// # Safety
                /// As the kernel's, and `t + R · lanes <= dim`.
                #[inline]
                #[target_feature(enable = $feature)]
                unsafe fn tile<const G: usize, const R: usize>(
                    rp: *const f32,
                    xp: *const f32,
                    op: *mut f32,
                    dim: usize,
                    t: usize,
                ) {
                    let mut acc = [[$zero(); R]; G];
                    for j in 0..dim {
                        // SAFETY: row j of Rᵀ has `dim` floats and t + R · lanes <= dim;
                        // x[g][j] is inside `inputs` (g < G, j < dim).
                        unsafe {
                            let mut r = [$zero(); R];
                            for (i, r) in r.iter_mut().enumerate() {
                                *r = $load(rp.add(j * dim + t + i * $lanes));
                            }
                            for (g, acc) in acc.iter_mut().enumerate() {
                                let s = $set1(*xp.add(g * dim + j));
                                for (a, &r) in acc.iter_mut().zip(&r) {
                                    *a = $add(*a, $mul(s, r));
                                }
                            }
                        }
                    }
                    for (g, acc) in acc.iter().enumerate() {
                        for (i, &a) in acc.iter().enumerate() {
                            // SAFETY: these columns of block g are inside `outputs`.
                            unsafe { $store(op.add(g * dim + t + i * $lanes), a) };
                        }
                    }
                }
                let (rp, xp, op) = (rt.as_ptr(), inputs.as_ptr(), outputs.as_mut_ptr());
                let mut t = 0;
                while t + 2 * $lanes <= dim {
                    // SAFETY: the kernel's contract, and t + 2 · lanes <= dim.
                    unsafe { tile::<G, 2>(rp, xp, op, dim, t) };
                    t += 2 * $lanes;
                }
                if t < dim {
                    // SAFETY: dim is a multiple of the lanes, so t + lanes == dim.
                    unsafe { tile::<G, 1>(rp, xp, op, dim, t) };
                }
            }
        };
    }

    rotate_kernel!(
        /// AVX-512 path: tiles of 32 output columns, then one of 16.
        rotate_group_avx512, "avx512f", 16, _mm512_setzero_ps, _mm512_loadu_ps,
        _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_mul_ps
    );
    rotate_kernel!(
        /// AVX2 path: tiles of 16 output columns, then one of 8.
        rotate_group_avx2, "avx2", 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,
        _mm256_set1_ps, _mm256_add_ps, _mm256_mul_ps
    );
}

/// `block ← rotation · block` for one word (`rotation` is `dim × dim` row-major);
/// `scratch` holds `dim` floats.
#[inline(always)]
pub(crate) fn rotate_block(rotation: &[f32], block: &mut [f32], scratch: &mut [f32]) {
    scratch.copy_from_slice(block);
    for (o, row) in block.iter_mut().zip(rotation.chunks_exact(scratch.len())) {
        let mut acc = [0.0f32; 8];
        let whole = row.len() / 8 * 8;
        for (r8, s8) in row[..whole].chunks_exact(8).zip(scratch.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += r8[l] * s8[l];
            }
        }
        let tail: f32 = row[whole..]
            .iter()
            .zip(&scratch[whole..])
            .map(|(a, b)| a * b)
            .sum();
        *o = acc.iter().sum::<f32>() + tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SeededRng;

    #[test]
    fn rotations_are_the_principal_axes_of_each_words_residuals() {
        // Word 0 at the origin: residuals spread along (1, 1) (σ = 3) with little spread
        // along (1, −1) (σ = 0.1). Word 1 at (100, 100) gets one descriptor (identity).
        let mut rng = SeededRng::new(5);
        let mut sample = Vec::new();
        for _ in 0..500 {
            let (a, b) = (rng.normal() as f32 * 3.0, rng.normal() as f32 * 0.1);
            sample.extend_from_slice(&[a + b, a - b]);
        }
        sample.extend_from_slice(&[101.0, 99.0]);
        let mut assign = vec![0u32; 500];
        assign.push(1);
        let centroids = [0.0, 0.0, 100.0, 100.0];
        let rot = local_rotations(&sample, &assign, &centroids, 2, false, |_| {}).unwrap();
        assert_eq!(rot.len(), 2 * 4);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        // First axis ±(1, 1)/√2, second ±(1, −1)/√2; orthonormal rows.
        assert!((rot[0].abs() - h).abs() < 0.01 && (rot[1] - rot[0]).abs() < 0.01);
        assert!((rot[2].abs() - h).abs() < 0.01 && (rot[3] + rot[2]).abs() < 0.01);
        let dot = rot[0] * rot[2] + rot[1] * rot[3];
        assert!(dot.abs() < 1e-5);
        assert_eq!(&rot[4..], &[1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn preprocessing_and_residual_norm_are_applied() {
        // Residuals (2, 0) ×3 and (0, 1) ×3 around the origin: mean (1, 0.5), covariance
        // [[1, −0.5], [−0.5, 0.25]], first axis ±(2, −1)/√5. A `preprocess` that doubles
        // every row scales the covariance by 4: same axes. With residual normalisation the
        // residuals become (1, 0) and (0, 1): covariance [[0.25, −0.25], [−0.25, 0.25]],
        // first axis ±(1, −1)/√2.
        let sample = [
            2.0f32, 0.0, 2.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
        ];
        let assign = [0u32; 6];
        let plain = local_rotations(&sample, &assign, &[0.0, 0.0], 2, false, |_| {}).unwrap();
        let (a, b) = (2.0 / 5.0f32.sqrt(), 1.0 / 5.0f32.sqrt());
        assert!((plain[0].abs() - a).abs() < 1e-4, "{plain:?}");
        assert!((plain[1] + plain[0] / 2.0).abs() < 1e-4, "{plain:?}");
        assert!((plain[2].abs() - b).abs() < 1e-4, "{plain:?}");
        let doubled = local_rotations(&sample, &assign, &[0.0, 0.0], 2, false, |x| {
            x.iter_mut().for_each(|v| *v *= 2.0)
        })
        .unwrap();
        for (p, d) in plain.iter().zip(&doubled) {
            assert!((p - d).abs() < 1e-5, "{plain:?} vs {doubled:?}");
        }
        let rn = local_rotations(&sample, &assign, &[0.0, 0.0], 2, true, |_| {}).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (rn[0].abs() - h).abs() < 1e-4 && (rn[1] + rn[0]).abs() < 1e-4,
            "{rn:?}"
        );
    }

    #[test]
    fn rotate_block_by_hand() {
        let rotation = [0.0f32, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let mut block = [1.0f32, 2.0, 3.0];
        let mut scratch = [0.0f32; 3];
        rotate_block(&rotation, &mut block, &mut scratch);
        assert_eq!(block, [2.0, -1.0, 6.0]);
        // Longer than one 8-lane chunk: a permutation.
        let dim = 11;
        let mut perm = vec![0.0f32; dim * dim];
        for i in 0..dim {
            perm[i * dim + (i + 3) % dim] = 1.0;
        }
        let mut v: Vec<f32> = (0..dim).map(|i| i as f32).collect();
        let mut scratch = vec![0.0f32; dim];
        rotate_block(&perm, &mut v, &mut scratch);
        let want: Vec<f32> = (0..dim).map(|i| ((i + 3) % dim) as f32).collect();
        assert_eq!(v, want);
    }

    #[test]
    fn grouped_rotation_agrees_with_the_reference() {
        // Whole 32-column tiles (128, 64), a 16-column tile after whole ones (48), an
        // 8-column AVX2 tile (40), and the portable path only (11); 1 to GROUP blocks.
        for dim in [128usize, 64, 48, 40, 11] {
            let mut rng = SeededRng::new(dim as u64);
            let rotation: Vec<f32> = (0..dim * dim).map(|_| rng.normal() as f32).collect();
            let rotation_t = transpose_rotations(&rotation, dim);
            for blocks in 1..=GROUP {
                let n = blocks * dim;
                let inputs: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
                let mut want = vec![f32::NAN; n];
                rotate_group_portable(&rotation_t, dim, &inputs, &mut want);
                // Every path this CPU has gives the reference's bits.
                let mut got = vec![f32::NAN; n];
                rotate_group(&rotation_t, dim, &inputs, &mut got);
                assert_eq!(got, want, "dim {dim}, {blocks} blocks: dispatched path");
                #[cfg(target_arch = "x86_64")]
                {
                    if dim.is_multiple_of(16) && is_x86_feature_detected!("avx512f") {
                        got.fill(f32::NAN);
                        // SAFETY: detected; shapes as rotate_group checks them.
                        unsafe {
                            match blocks {
                                1 => x86::rotate_group_avx512::<1>(
                                    &rotation_t,
                                    dim,
                                    &inputs,
                                    &mut got,
                                ),
                                2 => x86::rotate_group_avx512::<2>(
                                    &rotation_t,
                                    dim,
                                    &inputs,
                                    &mut got,
                                ),
                                3 => x86::rotate_group_avx512::<3>(
                                    &rotation_t,
                                    dim,
                                    &inputs,
                                    &mut got,
                                ),
                                _ => x86::rotate_group_avx512::<4>(
                                    &rotation_t,
                                    dim,
                                    &inputs,
                                    &mut got,
                                ),
                            }
                        };
                        assert_eq!(got, want, "dim {dim}, {blocks} blocks: AVX-512");
                    }
                    if dim.is_multiple_of(8) && is_x86_feature_detected!("avx2") {
                        got.fill(f32::NAN);
                        // SAFETY: detected; shapes as rotate_group checks them.
                        unsafe {
                            match blocks {
                                1 => {
                                    x86::rotate_group_avx2::<1>(&rotation_t, dim, &inputs, &mut got)
                                }
                                2 => {
                                    x86::rotate_group_avx2::<2>(&rotation_t, dim, &inputs, &mut got)
                                }
                                3 => {
                                    x86::rotate_group_avx2::<3>(&rotation_t, dim, &inputs, &mut got)
                                }
                                _ => {
                                    x86::rotate_group_avx2::<4>(&rotation_t, dim, &inputs, &mut got)
                                }
                            }
                        };
                        assert_eq!(got, want, "dim {dim}, {blocks} blocks: AVX2");
                    }
                }
                // The reference is the rotation: against the row-major matrix-vector product.
                let mut scratch = vec![0.0f32; dim];
                for (g, x) in inputs.chunks_exact(dim).enumerate() {
                    let mut direct = x.to_vec();
                    rotate_block(&rotation, &mut direct, &mut scratch);
                    for (o, (a, b)) in want[g * dim..(g + 1) * dim].iter().zip(&direct).enumerate()
                    {
                        let tol = 1e-4 * (1.0 + b.abs());
                        assert!(
                            (a - b).abs() <= tol,
                            "dim {dim} block {g} out {o}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn stored_rotations_are_checked() {
        assert!(check_rotations(&[1.0, 0.0, 0.0, 1.0], 1, 2).is_ok());
        assert!(check_rotations(&[1.0, 0.0, 0.0], 1, 2).is_err());
        assert!(check_rotations(&[1.0, f32::NAN, 0.0, 1.0], 1, 2).is_err());
    }
}
