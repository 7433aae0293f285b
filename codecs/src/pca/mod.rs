//! PCA: fitting (several routes, see [`PcaRoute`]), optional whitening and random
//! rotation, and applying the learnt linear map `y = A (x − mean)` to vectors.
//!
//! Conventions:
//! - eigenvalues are variances along the principal axes with the population
//!   normalisation (sum of squares divided by `n`, as FAISS's `PCAMatrix` does);
//! - the matrix `A` (`d_out × d_in`, row-major) is `R · W · V`: `V` the principal
//!   components as orthonormal rows, `W = diag(λᵢ^eigen_power)` (whitening, tiny
//!   eigenvalues floored) and `R` a seeded random rotation (or the identity);
//! - [`Pca::explained_variance_ratio`] is the kept variance over the total variance of
//!   the training data.

mod fit;
#[cfg(test)]
mod tests;

pub use fit::{COVARIANCE_MAX_DIM, LINFA_MAX_DIM, LINFA_MAX_ELEMENTS, PcaRoute, pick_route};

use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::linalg;

/// How to fit a PCA. Build with a struct literal; `eigen_power` must lie in `[-1, 0]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaOptions {
    /// Output dimension (number of principal components kept).
    pub d_out: usize,
    /// Component `i` is scaled by `λᵢ^eigen_power`: 0 = plain PCA, −0.5 = full whitening.
    pub eigen_power: f32,
    /// Apply a seeded random orthogonal rotation after the projection (balances the
    /// variance across PQ sub-spaces).
    pub random_rotation: bool,
    /// Seed for the rotation and for the randomized fitting route.
    pub seed: u64,
}

impl PcaOptions {
    /// Plain PCA to `d_out` dimensions (no whitening, no rotation, seed 0).
    pub fn new(d_out: usize) -> Self {
        PcaOptions {
            d_out,
            eigen_power: 0.0,
            random_rotation: false,
            seed: 0,
        }
    }
}

/// Eigenvalues below this fraction of the largest are raised to it before whitening,
/// so that near-null directions are not blown up.
pub const WHITENING_FLOOR: f64 = 1e-8;

/// Mixed into the seed for the rotation, so it differs from the fitting route's stream.
const ROTATION_SEED_SALT: u64 = 0x726F_7461_7469_6F6E;

/// A fitted (or deserialised) PCA transform.
#[derive(Debug, Clone)]
pub struct Pca {
    d_in: usize,
    d_out: usize,
    mean: Vec<f32>,
    /// `A`, `d_out × d_in` row-major.
    matrix: Vec<f32>,
    eigenvalues: Vec<f32>,
    total_variance: f32,
    /// Orthonormal basis of `A`'s row space (`d_out × d_in`), used for reconstruction;
    /// `None` when `A` itself is orthonormal (no whitening, no rotation).
    basis: Option<Vec<f32>>,
    route: Option<PcaRoute>,
}

impl Pca {
    /// Fits a PCA on `data` (`n` rows of `dim` values), choosing the fitting route with
    /// [`pick_route`].
    pub fn fit(data: &[f32], dim: usize, opts: &PcaOptions) -> Result<Pca> {
        Self::fit_with_route(data, dim, opts, PcaRoute::Auto)
    }

    /// Like [`Pca::fit`] but with a forced fitting route (`PcaRoute::Auto` picks one).
    pub fn fit_with_route(
        data: &[f32],
        dim: usize,
        opts: &PcaOptions,
        route: PcaRoute,
    ) -> Result<Pca> {
        let n = validate_fit_input(data, dim, opts)?;
        let fitted = fit::fit_components(data, n, dim, opts.d_out, opts.seed, route)?;
        Self::assemble(fitted, opts)
    }

    /// Builds the final map `A = R · W · V` from fitted components.
    fn assemble(fitted: fit::Fitted, opts: &PcaOptions) -> Result<Pca> {
        let fit::Fitted {
            mean,
            components,
            eigenvalues,
            total_variance,
            route,
            d_in,
        } = fitted;
        let d_out = eigenvalues.len();
        let largest = eigenvalues.first().copied().unwrap_or(0.0).max(0.0);
        let floor = largest * WHITENING_FLOOR;
        let mut a = components.clone();
        // With no variance at all there is nothing to whiten (and nothing to divide by).
        if opts.eigen_power != 0.0 && largest > 0.0 {
            for (row, &lambda) in a.chunks_exact_mut(d_in).zip(&eigenvalues) {
                let scale = lambda.max(floor).powf(opts.eigen_power as f64);
                row.iter_mut().for_each(|x| *x *= scale);
            }
        }
        if opts.random_rotation {
            let r = linalg::random_orthogonal(d_out, opts.seed ^ ROTATION_SEED_SALT)?;
            let mut rotated = vec![0.0f64; d_out * d_in];
            rotated
                .par_chunks_mut(d_in)
                .enumerate()
                .for_each(|(i, out)| {
                    for (j, &rij) in r[i * d_out..(i + 1) * d_out].iter().enumerate() {
                        let src = &a[j * d_in..(j + 1) * d_in];
                        out.iter_mut().zip(src).for_each(|(o, &s)| *o += rij * s);
                    }
                });
            a = rotated;
        }
        if a.iter().any(|x| !(*x as f32).is_finite()) {
            return Err(CodecError::Numerical(
                "whitening overflowed: the eigenvalues are too small for this eigen_power".into(),
            ));
        }
        let orthonormal = opts.eigen_power == 0.0 && !opts.random_rotation;
        let basis = (!orthonormal).then(|| components.iter().map(|&x| x as f32).collect());
        Ok(Pca {
            d_in,
            d_out,
            mean: mean.iter().map(|&x| x as f32).collect(),
            matrix: a.iter().map(|&x| x as f32).collect(),
            eigenvalues: eigenvalues.iter().map(|&x| x as f32).collect(),
            total_variance: total_variance as f32,
            basis,
            route: Some(route),
        })
    }

    /// Rebuilds a transform from its serialised parts: `mean` (`d_in`), `matrix`
    /// (`d_out × d_in`, row-major, applied as `y = A (x − mean)`) and `eigenvalues`.
    /// `eigenvalues` holds at least `d_out` values, largest first: the first `d_out` are
    /// the kept ones and the sum of all of them is taken as the total variance (pass the
    /// full spectrum, or follow with [`Pca::with_total_variance`]). Fails on wrong
    /// lengths, non-finite values, or a matrix whose rows are linearly dependent.
    pub fn from_parts(
        mean: Vec<f32>,
        matrix: Vec<f32>,
        eigenvalues: Vec<f32>,
        d_in: usize,
        d_out: usize,
    ) -> Result<Pca> {
        if d_in == 0 || d_out == 0 {
            return Err(CodecError::InvalidParameter(
                "PCA dimensions must be positive".into(),
            ));
        }
        if d_out > d_in {
            return Err(CodecError::InvalidParameter(format!(
                "PCA output dimension {d_out} exceeds input dimension {d_in}"
            )));
        }
        if mean.len() != d_in {
            return Err(CodecError::DimensionMismatch {
                expected: d_in,
                got: mean.len(),
            });
        }
        if matrix.len() != d_out * d_in {
            return Err(CodecError::DimensionMismatch {
                expected: d_out * d_in,
                got: matrix.len(),
            });
        }
        if eigenvalues.len() < d_out {
            return Err(CodecError::DimensionMismatch {
                expected: d_out,
                got: eigenvalues.len(),
            });
        }
        let all_finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !all_finite(&mean) || !all_finite(&matrix) || !all_finite(&eigenvalues) {
            return Err(CodecError::InvalidParameter(
                "PCA parts contain a non-finite value".into(),
            ));
        }
        if eigenvalues.iter().any(|&x| x < 0.0) {
            return Err(CodecError::InvalidParameter(
                "PCA eigenvalues must be non-negative".into(),
            ));
        }
        let total_variance = eigenvalues.iter().map(|&x| x as f64).sum::<f64>() as f32;
        let mut eigenvalues = eigenvalues;
        eigenvalues.truncate(d_out);
        let mut basis: Vec<f64> = matrix.iter().map(|&x| x as f64).collect();
        linalg::orthonormalize_rows(&mut basis, d_out, d_in).map_err(|_| {
            CodecError::InvalidParameter("PCA matrix rows are linearly dependent".into())
        })?;
        let basis: Vec<f32> = basis.iter().map(|&x| x as f32).collect();
        let orthonormal = basis
            .iter()
            .zip(&matrix)
            .all(|(a, b)| (a - b).abs() <= 1e-6);
        Ok(Pca {
            d_in,
            d_out,
            mean,
            matrix,
            eigenvalues,
            total_variance,
            basis: (!orthonormal).then_some(basis),
            route: None,
        })
    }

    /// Sets the total variance used by [`Pca::explained_variance_ratio`] (must be at
    /// least the sum of the kept eigenvalues, up to rounding).
    pub fn with_total_variance(mut self, total_variance: f32) -> Result<Pca> {
        let kept: f32 = self.eigenvalues.iter().sum();
        if !total_variance.is_finite() || total_variance < kept * (1.0 - 1e-4) {
            return Err(CodecError::InvalidParameter(format!(
                "total variance {total_variance} is below the kept variance {kept}"
            )));
        }
        self.total_variance = total_variance;
        Ok(self)
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// Training mean (`d_in`).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Variances along the kept principal axes (`d_out`, largest first).
    pub fn eigenvalues(&self) -> &[f32] {
        &self.eigenvalues
    }

    /// Total variance of the training data (trace of its covariance).
    pub fn total_variance(&self) -> f32 {
        self.total_variance
    }

    /// The full linear map `A` (`d_out × d_in`, row-major), applied as `y = A (x − mean)`.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    /// The route that fitted this transform (`None` when built by [`Pca::from_parts`]).
    pub fn route(&self) -> Option<PcaRoute> {
        self.route
    }

    /// Kept variance over total variance of the training data, in `[0, 1]`.
    pub fn explained_variance_ratio(&self) -> f32 {
        if self.total_variance <= 0.0 {
            return 1.0;
        }
        let kept: f64 = self.eigenvalues.iter().map(|&x| x as f64).sum();
        (kept / self.total_variance as f64).min(1.0) as f32
    }

    /// Transforms one row (`d_in` values) into `out` (`d_out` values). No allocation.
    ///
    /// # Panics
    /// If `row.len() != d_in` or `out.len() != d_out` (a caller bug; [`Pca::apply`]
    /// checks its input).
    pub fn apply_into(&self, row: &[f32], out: &mut [f32]) {
        assert_eq!(
            row.len(),
            self.d_in,
            "apply_into: row has the wrong dimension"
        );
        assert_eq!(
            out.len(),
            self.d_out,
            "apply_into: out has the wrong dimension"
        );
        project_row(&self.matrix, &self.mean, row, out);
    }

    /// Transforms many rows (`data.len()` a multiple of `d_in`), in parallel. Returns
    /// `n × d_out` values.
    pub fn apply(&self, data: &[f32]) -> Result<Vec<f32>> {
        let n = self.rows_of(data)?;
        let mut out = vec![0.0f32; n * self.d_out];
        project_rows(
            &self.matrix,
            &self.mean,
            data,
            &mut out,
            self.d_in,
            self.d_out,
        );
        Ok(out)
    }

    /// Mean squared reconstruction error per row, `‖x − x̂‖²` averaged over the rows of
    /// `data`, where `x̂` is `x` projected onto the kept sub-space (whitening and
    /// rotation do not change it).
    pub fn reconstruction_error(&self, data: &[f32]) -> Result<f32> {
        let n = self.rows_of(data)?;
        if n == 0 {
            return Err(CodecError::NotEnoughPoints {
                what: "reconstruction error".into(),
                needed: 1,
                got: 0,
            });
        }
        let basis = self.basis.as_deref().unwrap_or(&self.matrix);
        let (d_in, d_out) = (self.d_in, self.d_out);
        const CHUNK: usize = 256;
        let total: f64 = data
            .par_chunks(CHUNK * d_in)
            .map(|chunk| {
                let rows = chunk.len() / d_in;
                let mut centred = chunk.to_vec();
                for row in centred.chunks_exact_mut(d_in) {
                    row.iter_mut().zip(&self.mean).for_each(|(x, m)| *x -= m);
                }
                let mut coords = vec![0.0f32; rows * d_out];
                // coords = centred · basisᵀ, then centred -= coords · basis.
                for (c_row, x_row) in coords
                    .chunks_exact_mut(d_out)
                    .zip(centred.chunks_exact(d_in))
                {
                    for (c, b_row) in c_row.iter_mut().zip(basis.chunks_exact(d_in)) {
                        *c = linalg::dot_f32(b_row, x_row);
                    }
                }
                let mut recon = vec![0.0f32; rows * d_in];
                linalg::matmul(&coords, basis, &mut recon, rows, d_out, d_in);
                centred
                    .iter()
                    .zip(&recon)
                    .map(|(&x, &r)| {
                        let e = (x - r) as f64;
                        e * e
                    })
                    .sum::<f64>()
            })
            .sum();
        Ok((total / n as f64) as f32)
    }

    fn rows_of(&self, data: &[f32]) -> Result<usize> {
        if !data.len().is_multiple_of(self.d_in) {
            return Err(CodecError::DimensionMismatch {
                expected: self.d_in,
                got: data.len() % self.d_in,
            });
        }
        Ok(data.len() / self.d_in)
    }
}

/// `out = A (row − mean)`, one row; centring is fused into the dot products, which use
/// the run-time dispatched SIMD inner product of [`crate::distance`].
fn project_row(matrix: &[f32], mean: &[f32], row: &[f32], out: &mut [f32]) {
    let d_in = mean.len();
    let inner_product = crate::distance::kernels().inner_product;
    const BLOCK: usize = 1024;
    out.iter_mut().for_each(|o| *o = 0.0);
    // Centre a block of the input on the stack, then accumulate every output over it.
    let mut centred = [0.0f32; BLOCK];
    let mut start = 0;
    while start < d_in {
        let len = BLOCK.min(d_in - start);
        for ((c, &x), &m) in centred[..len]
            .iter_mut()
            .zip(&row[start..start + len])
            .zip(&mean[start..start + len])
        {
            *c = x - m;
        }
        for (o, a_row) in out.iter_mut().zip(matrix.chunks_exact(d_in)) {
            *o += inner_product(&a_row[start..start + len], &centred[..len]);
        }
        start += len;
    }
}

/// `out = (data − mean) Aᵀ` for many rows, parallel over row chunks (GEMM per chunk).
fn project_rows(
    matrix: &[f32],
    mean: &[f32],
    data: &[f32],
    out: &mut [f32],
    d_in: usize,
    d_out: usize,
) {
    const CHUNK: usize = 256;
    out.par_chunks_mut(CHUNK * d_out)
        .zip(data.par_chunks(CHUNK * d_in))
        .for_each(|(out_chunk, in_chunk)| {
            let rows = in_chunk.len() / d_in;
            if rows < 8 {
                for (o, x) in out_chunk
                    .chunks_exact_mut(d_out)
                    .zip(in_chunk.chunks_exact(d_in))
                {
                    project_row(matrix, mean, x, o);
                }
                return;
            }
            let mut centred = in_chunk.to_vec();
            for row in centred.chunks_exact_mut(d_in) {
                row.iter_mut().zip(mean).for_each(|(x, m)| *x -= m);
            }
            gemm_nt(&centred, matrix, out_chunk, rows, d_in, d_out);
        });
}

/// `c = a · bᵀ`, `a: m × k`, `b: n × k`, `c: m × n`, single-threaded GEMM.
fn gemm_nt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};
    // The shapes are built from lengths computed by the callers above.
    let (Ok(a), Ok(b), Ok(mut c)) = (
        ArrayView2::from_shape((m, k), a),
        ArrayView2::from_shape((n, k), b),
        ArrayViewMut2::from_shape((m, n), c),
    ) else {
        unreachable!("gemm_nt called with inconsistent shapes")
    };
    general_mat_mul(1.0, &a, &b.t(), 0.0, &mut c);
}

/// Checks the training input and options; returns the number of rows.
fn validate_fit_input(data: &[f32], dim: usize, opts: &PcaOptions) -> Result<usize> {
    if dim == 0 {
        return Err(CodecError::InvalidParameter(
            "PCA input dimension must be positive".into(),
        ));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: data.len() % dim,
        });
    }
    let n = data.len() / dim;
    if opts.d_out == 0 {
        return Err(CodecError::InvalidParameter(
            "PCA output dimension must be positive".into(),
        ));
    }
    if opts.d_out > dim {
        return Err(CodecError::InvalidParameter(format!(
            "PCA output dimension {} exceeds input dimension {dim}",
            opts.d_out
        )));
    }
    if n < 2 {
        return Err(CodecError::NotEnoughPoints {
            what: "PCA".into(),
            needed: 2,
            got: n,
        });
    }
    if opts.d_out > n - 1 {
        return Err(CodecError::NotEnoughPoints {
            what: format!("PCA to {} dimensions", opts.d_out),
            needed: opts.d_out + 1,
            got: n,
        });
    }
    if !(-1.0..=0.0).contains(&opts.eigen_power) {
        return Err(CodecError::InvalidParameter(format!(
            "eigen_power must be in [-1, 0] (-0.5 = full whitening), got {}",
            opts.eigen_power
        )));
    }
    if let Some(bad) = data
        .chunks_exact(dim)
        .position(|row| row.iter().any(|x| !x.is_finite()))
    {
        return Err(CodecError::NonFinite { row: bad });
    }
    Ok(n)
}
