//! The PCA fitting routes: linfa-reduction's truncated SVD, an exact covariance +
//! symmetric eigendecomposition, and a randomized subspace iteration for large inputs;
//! plus the rule that picks one.

use linfa::DatasetBase;
use linfa::traits::Fit;
use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::linalg::{self, SplitMix64};

/// Which algorithm fits the principal components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcaRoute {
    /// Pick with [`pick_route`].
    Auto,
    /// `linfa-reduction`'s PCA (f64, truncated SVD by LOBPCG). If it fails or returns
    /// fewer components than asked (it drops near-null directions), the covariance route
    /// does the fit instead.
    Linfa,
    /// Covariance matrix in f64 + dense symmetric eigendecomposition: exact, `O(n d² +
    /// 9 d³)` time and `d²` memory.
    Covariance,
    /// Randomized subspace iteration (f32 products, f64 Rayleigh–Ritz) on the centred
    /// data until the kept eigenvalues settle: `O(n d l)` per iteration with
    /// `l ≈ 1.5 d_out`, never forms a `d × d` matrix.
    Randomized,
}

/// Largest input dimension for which [`pick_route`] uses linfa-reduction.
pub const LINFA_MAX_DIM: usize = 256;

/// Largest training matrix (`n · d_in` values) for which [`pick_route`] uses
/// linfa-reduction: it copies the data twice in f64 (here 2 × 256 MiB) and its time grows
/// with `n` (1.1 s for 100,000 × 128 SIFT against 0.17 s for the covariance route).
pub const LINFA_MAX_ELEMENTS: usize = 1 << 25;

/// Largest input dimension for which [`pick_route`] uses the exact covariance route.
pub const COVARIANCE_MAX_DIM: usize = 512;

/// The automatic choice, from `tools/scripts/pca_faiss.py` on real VLADs of the clip-art
/// set and SIFT (5,000 VLAD / 20,000 SIFT training rows, d_out 32–256, 2 threads, a
/// loaded machine: ratios are within one run). Every route matched FAISS `PCAMatrix`'s
/// explained variance to 5 digits, so the rule is about time:
///
/// - `d_in ≤ 256` ([`LINFA_MAX_DIM`]) and `n · d_in ≤ 2²⁵` ([`LINFA_MAX_ELEMENTS`]):
///   **linfa-reduction** (the project's chosen crate) where it costs about a second or
///   two — 0.5–2 s, 0.1–16× FAISS's time depending on the run, while the covariance route
///   takes 0.1–0.2 s (0.02–0.5×). It costs 19–120 s at 1024-D and 64–240 s at 8192-D.
/// - `d_in ≤ 512` ([`COVARIANCE_MAX_DIM`]): **covariance** + dense eigensolver (0.4 s at
///   512-D); at 1024-D it already takes 2–7 s against 1.5 s for randomized, and its
///   `9 d³` eigensolver takes 32–64 s at 2048-D.
/// - larger inputs: **randomized** shifted subspace iteration — 1.5–7 s at 1024-D
///   (0.17–0.47× FAISS), 4–12 s at 2048-D (0.06–0.14×), 11–26 s at 8192-D (0.03–0.06×
///   FAISS's 420–560 s).
/// - except that when more than a quarter of at most `4 · COVARIANCE_MAX_DIM` input
///   dimensions are kept (subspace iteration then gains nothing), covariance is used.
///
/// Beyond the linfa bound `n` does not enter the rule (the other routes are linear in `n`).
pub fn pick_route(n: usize, d_in: usize, d_out: usize) -> PcaRoute {
    if d_in <= LINFA_MAX_DIM && n.saturating_mul(d_in) <= LINFA_MAX_ELEMENTS {
        PcaRoute::Linfa
    } else if d_in <= COVARIANCE_MAX_DIM || (d_out * 4 > d_in && d_in <= 4 * COVARIANCE_MAX_DIM) {
        PcaRoute::Covariance
    } else {
        PcaRoute::Randomized
    }
}

/// What a route produces: orthonormal components (`d_out × d_in`, rows, f64) with their
/// eigenvalues (largest first) and the data's mean and total variance.
pub(super) struct Fitted {
    pub mean: Vec<f64>,
    pub components: Vec<f64>,
    pub eigenvalues: Vec<f64>,
    pub total_variance: f64,
    pub route: PcaRoute,
    pub d_in: usize,
}

/// Runs the requested route on validated input (`n ≥ 2`, `d_out ≤ min(d, n − 1)`).
pub(super) fn fit_components(
    data: &[f32],
    n: usize,
    d: usize,
    d_out: usize,
    seed: u64,
    route: PcaRoute,
) -> Result<Fitted> {
    let route = match route {
        PcaRoute::Auto => pick_route(n, d, d_out),
        other => other,
    };
    let mean = column_mean(data, n, d);
    match route {
        PcaRoute::Linfa => match fit_linfa(data, n, d, d_out, mean.clone())? {
            Some(fitted) => Ok(fitted),
            None => fit_covariance(data, n, d, d_out, mean),
        },
        PcaRoute::Covariance | PcaRoute::Auto => fit_covariance(data, n, d, d_out, mean),
        PcaRoute::Randomized => fit_randomized(data, n, d, d_out, mean, seed),
    }
}

/// Column means in f64 (parallel over fixed row chunks, summed in order).
fn column_mean(data: &[f32], n: usize, d: usize) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = data
        .par_chunks(ROW_CHUNK * d)
        .map(|chunk| {
            let mut sum = vec![0.0f64; d];
            for row in chunk.chunks_exact(d) {
                sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
            }
            sum
        })
        .collect();
    let mut mean = vec![0.0f64; d];
    for p in &partials {
        mean.iter_mut().zip(p).for_each(|(m, s)| *m += s);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    mean
}

/// Rows per parallel work item in the accumulations.
const ROW_CHUNK: usize = 1024;

/// Sum of squared centred norms over `n` (the trace of the covariance).
fn total_variance(data: &[f32], n: usize, d: usize, mean: &[f64]) -> f64 {
    let partials: Vec<f64> = data
        .par_chunks(ROW_CHUNK * d)
        .map(|chunk| {
            chunk
                .chunks_exact(d)
                .map(|row| {
                    row.iter()
                        .zip(mean)
                        .map(|(&x, &m)| {
                            let c = x as f64 - m;
                            c * c
                        })
                        .sum::<f64>()
                })
                .sum()
        })
        .collect();
    partials.iter().sum::<f64>() / n as f64
}

/// linfa-reduction's PCA. `Ok(None)` when it fails or returns fewer than `d_out`
/// components.
fn fit_linfa(
    data: &[f32],
    n: usize,
    d: usize,
    d_out: usize,
    mean: Vec<f64>,
) -> Result<Option<Fitted>> {
    let records = Array2::from_shape_fn((n, d), |(i, j)| data[i * d + j] as f64);
    let dataset = DatasetBase::from(records);
    let Ok(model) = linfa_reduction::Pca::params(d_out).fit(&dataset) else {
        return Ok(None);
    };
    let components = model.components();
    let sigma = model.singular_values();
    if components.nrows() < d_out || sigma.len() < d_out || components.ncols() != d {
        return Ok(None);
    }
    let mut flat = Vec::with_capacity(d_out * d);
    for row in components.rows().into_iter().take(d_out) {
        flat.extend(row.iter().copied());
    }
    let sigma: Vec<f64> = sigma.iter().take(d_out).copied().collect();
    if flat.iter().chain(&sigma).any(|x| !x.is_finite()) || !rows_orthonormal(&flat, d_out, d) {
        return Ok(None);
    }
    // Singular values of the centred data: eigenvalue = σ² / n (population variance).
    let eigenvalues = sigma.iter().map(|s| s * s / n as f64).collect();
    let total = total_variance(data, n, d, &mean);
    Ok(Some(Fitted {
        mean,
        components: flat,
        eigenvalues,
        total_variance: total,
        route: PcaRoute::Linfa,
        d_in: d,
    }))
}

/// Whether the rows of `m` (`k × d`) are orthonormal to 1e-6.
fn rows_orthonormal(m: &[f64], k: usize, d: usize) -> bool {
    (0..k).all(|i| {
        (0..=i).all(|j| {
            let dot = linalg::dot_f64(&m[i * d..(i + 1) * d], &m[j * d..(j + 1) * d]);
            (dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-6
        })
    })
}

/// Exact route: `C = Xcᵀ Xc / n` in f64, then a dense symmetric eigendecomposition.
fn fit_covariance(
    data: &[f32],
    n: usize,
    d: usize,
    d_out: usize,
    mean: Vec<f64>,
) -> Result<Fitted> {
    use ndarray::linalg::general_mat_mul;
    let partials: Vec<Array2<f64>> = data
        .par_chunks(ROW_CHUNK * d)
        .map(|chunk| {
            let rows = chunk.len() / d;
            let centred =
                Array2::from_shape_fn((rows, d), |(i, j)| chunk[i * d + j] as f64 - mean[j]);
            let mut cov = Array2::<f64>::zeros((d, d));
            general_mat_mul(1.0, &centred.t(), &centred, 0.0, &mut cov);
            cov
        })
        .collect();
    let mut cov = Array2::<f64>::zeros((d, d));
    for p in &partials {
        cov += p;
    }
    cov /= n as f64;
    let total = cov.diag().sum();
    let (flat, _) = cov.into_raw_vec_and_offset();
    let eig = linalg::sym_eigen(flat, d)?;
    Ok(Fitted {
        mean,
        components: eig.vectors[..d_out * d].to_vec(),
        eigenvalues: eig.values[..d_out].iter().map(|&v| v.max(0.0)).collect(),
        total_variance: total,
        route: PcaRoute::Covariance,
        d_in: d,
    })
}

/// Subspace iterations stop once the sum of the kept Ritz values (the explained variance,
/// which only grows towards its exact value, geometrically) moved by less than this
/// fraction in one iteration...
const RANDOMIZED_SUM_TOLERANCE: f64 = 1e-5;
/// ...and every kept Ritz value by less than this one (the tail values converge slowest
/// on flat spectra like VLAD's; 1e-3 is far below what whitening can notice).
const RANDOMIZED_VALUE_TOLERANCE: f64 = 1e-3;
/// Bounds on the number of subspace iterations.
const RANDOMIZED_MIN_ITERS: usize = 2;
const RANDOMIZED_MAX_ITERS: usize = 30;

/// Block size of the randomized route: `d_out` plus oversampling, at most the rank bound.
fn randomized_block(n: usize, d: usize, d_out: usize) -> usize {
    (d_out + (d_out / 2).max(16)).min(d).min(n - 1).max(d_out)
}

/// Randomized subspace iteration with Rayleigh–Ritz on `C = Xcᵀ Xc / n`.
fn fit_randomized(
    data: &[f32],
    n: usize,
    d: usize,
    d_out: usize,
    mean: Vec<f64>,
    seed: u64,
) -> Result<Fitted> {
    let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let mut xc = data.to_vec();
    xc.par_chunks_mut(d)
        .for_each(|row| row.iter_mut().zip(&mean32).for_each(|(x, m)| *x -= m));
    let total = total_variance(data, n, d, &mean);
    let l = randomized_block(n, d, d_out);

    // Q: l × d with orthonormal rows, from a seeded Gaussian start.
    let mut rng = SplitMix64::new(seed);
    let mut q: Vec<f32> = (0..l * d).map(|_| rng.gaussian() as f32).collect();
    orthonormalize_block(&mut q, l, d, &mut rng)?;

    if total <= 0.0 {
        // Constant data: every direction has zero variance; any orthonormal basis does.
        return Ok(Fitted {
            mean,
            components: q[..d_out * d].iter().map(|&x| x as f64).collect(),
            eigenvalues: vec![0.0; d_out],
            total_variance: 0.0,
            route: PcaRoute::Randomized,
            d_in: d,
        });
    }
    let mut z = vec![0.0f32; n * l];
    let mut small = vec![0.0f32; l * l];
    let mut next = vec![0.0f32; l * d];
    let mut previous: Option<Vec<f64>> = None;
    for iter in 0..RANDOMIZED_MAX_ITERS {
        // Z = Xc Qᵀ (n × l); B = Zᵀ Z / n is the Ritz matrix of C on span(Q).
        linalg::matmul_nt(&xc, &q, &mut z, n, d, l);
        linalg::matmul_tn(&z, &z, &mut small, l, n, l);
        let b: Vec<f64> = small.iter().map(|&x| x as f64 / n as f64).collect();
        let eig = linalg::sym_eigen(symmetrize(b, l), l)?;
        let converged = previous.as_ref().is_some_and(|prev| {
            let kept = &eig.values[..d_out];
            let (sum, prev_sum) = (kept.iter().sum::<f64>(), prev.iter().sum::<f64>());
            let scale = sum.abs().max(f64::MIN_POSITIVE);
            (sum - prev_sum).abs() <= RANDOMIZED_SUM_TOLERANCE * scale
                && kept.iter().zip(prev).all(|(now, before)| {
                    (now - before).abs()
                        <= RANDOMIZED_VALUE_TOLERANCE * now.abs().max(1e-12 * scale)
                })
        });
        if (converged && iter >= RANDOMIZED_MIN_ITERS) || iter + 1 == RANDOMIZED_MAX_ITERS {
            // Ritz vectors: rows of Uᵀ Q for the d_out largest Ritz values.
            let u: Vec<f32> = eig.vectors[..d_out * l].iter().map(|&x| x as f32).collect();
            let mut comps = vec![0.0f32; d_out * d];
            linalg::matmul(&u, &q, &mut comps, d_out, l, d);
            let mut components: Vec<f64> = comps.iter().map(|&x| x as f64).collect();
            // Re-orthonormalise in f64 (f32 products leave ~1e-6 drift).
            linalg::orthonormalize_rows(&mut components, d_out, d)?;
            return Ok(Fitted {
                mean,
                components,
                eigenvalues: eig.values[..d_out].iter().map(|&v| v.max(0.0)).collect(),
                total_variance: total,
                route: PcaRoute::Randomized,
                d_in: d,
            });
        }
        previous = Some(eig.values[..d_out].to_vec());
        // Next basis: Q ← orth(Q (C − σ I)) = orth(Zᵀ Xc − n σ Q). The shift σ = θ_l / 2
        // (θ_l the smallest Ritz value, a lower bound of λ_l) is below λ_{d_out} / 2, so
        // every unwanted eigenvalue of C − σ I (λ_j − σ for j > l, and −σ for the null
        // space) stays smaller in magnitude than the kept λ_i − σ: the shift only speeds
        // convergence (ratio (λ_{l+1} − σ)/(λ_i − σ) instead of λ_{l+1}/λ_i).
        let shift = if iter == 0 {
            0.0
        } else {
            0.5 * eig.values[l - 1].max(0.0)
        };
        linalg::matmul_tn(&z, &xc, &mut next, l, n, d);
        let scaled_shift = (n as f64 * shift) as f32;
        next.iter_mut()
            .zip(&q)
            .for_each(|(y, &old)| *y -= scaled_shift * old);
        std::mem::swap(&mut q, &mut next);
        orthonormalize_block(&mut q, l, d, &mut rng)?;
    }
    Err(CodecError::Numerical(
        "randomized PCA did not finish".into(),
    ))
}

/// Averages a matrix with its transpose (removes f32 rounding asymmetry).
fn symmetrize(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for i in 0..n {
        for j in i + 1..n {
            let v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
    a
}

/// Orthonormalises the `l` rows (length `d`) of `q` by SVQB, twice: `G = Q Qᵀ = U Σ Uᵀ`,
/// `Q ← Σ^{-1/2} Uᵀ Q`. In the first pass, directions with a negligible singular value
/// (the data's rank is below the block size) are replaced by fresh random ones, which
/// the second pass orthonormalises against the rest.
fn orthonormalize_block(q: &mut [f32], l: usize, d: usize, rng: &mut SplitMix64) -> Result<()> {
    let mut gram = vec![0.0f32; l * l];
    let mut next = vec![0.0f32; l * d];
    for pass in 0..2 {
        linalg::matmul_nt(q, q, &mut gram, l, d, l);
        let g: Vec<f64> = gram.iter().map(|&x| x as f64).collect();
        let eig = linalg::sym_eigen(symmetrize(g, l), l)?;
        let largest = eig.values.first().copied().unwrap_or(0.0);
        if largest.is_nan() || largest <= 0.0 {
            return Err(CodecError::Numerical(
                "randomized PCA basis collapsed to zero".into(),
            ));
        }
        let mut transform = vec![0.0f32; l * l];
        let mut lost = Vec::new();
        for (i, row) in transform.chunks_exact_mut(l).enumerate() {
            let value = eig.values[i];
            if value <= largest * 1e-10 {
                if pass == 1 {
                    return Err(CodecError::Numerical(
                        "randomized PCA could not keep an orthonormal basis".into(),
                    ));
                }
                lost.push(i);
                continue;
            }
            let scale = 1.0 / value.sqrt();
            row.iter_mut()
                .zip(&eig.vectors[i * l..(i + 1) * l])
                .for_each(|(t, &u)| *t = (u * scale) as f32);
        }
        linalg::matmul(&transform, q, &mut next, l, l, d);
        let unit = 1.0 / (d as f64).sqrt();
        for i in lost {
            next[i * d..(i + 1) * d]
                .iter_mut()
                .for_each(|x| *x = (rng.gaussian() * unit) as f32);
        }
        q.copy_from_slice(&next);
    }
    Ok(())
}
