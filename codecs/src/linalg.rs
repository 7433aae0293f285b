//! Small dense linear algebra used by the trainers: a seeded random generator with
//! Gaussian samples, a symmetric eigensolver (Householder tridiagonalisation + implicit
//! QL with shifts), orthonormalisation of column blocks, random orthogonal matrices, and
//! row-block-parallel matrix products on top of `ndarray`'s GEMM.
//!
//! Everything is deterministic for a given seed and thread count (products are split by
//! output rows, so the thread count does not change the summation order).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::{CodecError, Result};

/// A small, fast, seeded pseudo-random generator (SplitMix64). Not cryptographic; its
/// only job is reproducible initialisations.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
    spare_gaussian: Option<f64>,
}

impl SplitMix64 {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 {
            state: seed,
            spare_gaussian: None,
        }
    }

    /// Next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    pub fn next_f64_open(&mut self) -> f64 {
        // 53 random bits, shifted by half a step so 0 is never returned.
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..bound` (`bound > 0`), by rejection (no modulo bias).
    pub fn next_below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }

    /// A standard normal sample (Box–Muller, both values used).
    pub fn gaussian(&mut self) -> f64 {
        if let Some(g) = self.spare_gaussian.take() {
            return g;
        }
        let u1 = self.next_f64_open();
        let u2 = self.next_f64_open();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare_gaussian = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

/// Eigen-decomposition of a dense symmetric matrix.
#[derive(Debug, Clone)]
pub struct SymEigen {
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// Eigenvectors as rows (`n × n`, row `i` belongs to `values[i]`), orthonormal.
    pub vectors: Vec<f64>,
}

/// Eigen-decomposition of the symmetric `n × n` row-major matrix `a` (only symmetry is
/// assumed, not definiteness). Cost ≈ 9 n³ flops; meant for n up to a couple of thousand.
pub fn sym_eigen(mut a: Vec<f64>, n: usize) -> Result<SymEigen> {
    if a.len() != n * n {
        return Err(CodecError::DimensionMismatch {
            expected: n * n,
            got: a.len(),
        });
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(CodecError::Numerical(
            "eigensolver input has a non-finite entry".into(),
        ));
    }
    if n == 0 {
        return Ok(SymEigen {
            values: Vec::new(),
            vectors: Vec::new(),
        });
    }
    let (mut diag, mut off, mut rows) = tridiagonalize(&mut a, n);
    tridiagonal_ql(&mut diag, &mut off, &mut rows, n)?;
    // Sort largest first, moving eigenvector rows along.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| diag[j].total_cmp(&diag[i]));
    let values = order.iter().map(|&i| diag[i]).collect();
    let mut vectors = Vec::with_capacity(n * n);
    for &i in &order {
        vectors.extend_from_slice(&rows[i * n..(i + 1) * n]);
    }
    Ok(SymEigen { values, vectors })
}

/// Householder reduction `A = Q T Qᵀ`. Returns the diagonal and super-diagonal of `T`
/// (`off[n-1] = 0`) and `Qᵀ` row-major. `a` is destroyed (it stores the reflectors).
fn tridiagonalize(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut diag = vec![0.0; n];
    let mut off = vec![0.0; n];
    let mut betas = vec![0.0; n];
    let mut p = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        diag[k] = a[k * n + k];
        // x = A[k, k+1..] (equals the column, the trailing block is kept symmetric).
        let x = &a[k * n + k + 1..(k + 1) * n];
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        let tail = x[1..].iter().map(|v| v * v).sum::<f64>();
        if tail == 0.0 {
            off[k] = x[0];
            betas[k] = 0.0;
            continue;
        }
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        off[k] = alpha;
        // v = x - alpha e1 stored in place of x; H = I - beta v vᵀ.
        a[k * n + k + 1] -= alpha;
        let (head, trailing) = a.split_at_mut((k + 1) * n);
        let v = &head[k * n + k + 1..(k + 1) * n];
        let vv: f64 = v.iter().map(|t| t * t).sum();
        let beta = 2.0 / vv;
        betas[k] = beta;
        let m = n - k - 1;
        // p = beta * S v, S = trailing block A[k+1.., k+1..].
        for (i, pi) in p[..m].iter_mut().enumerate() {
            let row = &trailing[i * n + k + 1..(i + 1) * n];
            *pi = beta * dot_f64(row, v);
        }
        let kappa = 0.5 * beta * dot_f64(&p[..m], v);
        for i in 0..m {
            p[i] -= kappa * v[i];
        }
        // S -= v wᵀ + w vᵀ with w = p.
        for i in 0..m {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut trailing[i * n + k + 1..(i + 1) * n];
            for ((s, &vj), &wj) in row.iter_mut().zip(v).zip(&p[..m]) {
                *s -= vi * wj + wi * vj;
            }
        }
    }
    if n >= 2 {
        diag[n - 2] = a[(n - 2) * n + n - 2];
        off[n - 2] = a[(n - 2) * n + n - 1];
    }
    diag[n - 1] = a[(n - 1) * n + n - 1];
    off[n - 1] = 0.0;

    // Qᵀ = H_{n-3} ⋯ H_0, accumulated backwards: W ← W H_k touches rows/cols > k only.
    let mut w = vec![0.0; n * n];
    for i in 0..n {
        w[i * n + i] = 1.0;
    }
    for k in (0..n.saturating_sub(2)).rev() {
        let beta = betas[k];
        if beta == 0.0 {
            continue;
        }
        let v = &a[k * n + k + 1..(k + 1) * n];
        for r in k + 1..n {
            let row = &mut w[r * n + k + 1..(r + 1) * n];
            let s = beta * dot_f64(row, v);
            for (x, &vj) in row.iter_mut().zip(v) {
                *x -= s * vj;
            }
        }
    }
    (diag, off, w)
}

/// Implicit QL iterations with Wilkinson-like shifts on a symmetric tridiagonal matrix.
/// On return `diag` holds the eigenvalues and row `i` of `rows` its eigenvector (rows of
/// `rows` start as `Qᵀ` from the tridiagonalisation).
fn tridiagonal_ql(diag: &mut [f64], off: &mut [f64], rows: &mut [f64], n: usize) -> Result<()> {
    const MAX_SWEEPS: usize = 60;
    for l in 0..n {
        let mut sweeps = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let scale = diag[m].abs() + diag[m + 1].abs();
                if off[m].abs() <= f64::EPSILON * scale {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            sweeps += 1;
            if sweeps > MAX_SWEEPS {
                return Err(CodecError::Numerical(
                    "symmetric eigensolver did not converge".into(),
                ));
            }
            let mut g = (diag[l + 1] - diag[l]) / (2.0 * off[l]);
            let mut r = g.hypot(1.0);
            g = diag[m] - diag[l] + off[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut i = m;
            let mut underflow = false;
            while i > l {
                i -= 1;
                let f = s * off[i];
                let b = c * off[i];
                r = f.hypot(g);
                off[i + 1] = r;
                if r == 0.0 {
                    diag[i + 1] -= p;
                    off[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = diag[i + 1] - p;
                r = (diag[i] - g) * s + 2.0 * c * b;
                p = s * r;
                diag[i + 1] = g + p;
                g = c * r - b;
                // Rotate eigenvector rows i and i+1.
                let (lo, hi) = rows.split_at_mut((i + 1) * n);
                let row_i = &mut lo[i * n..];
                let row_j = &mut hi[..n];
                for (xi, xj) in row_i.iter_mut().zip(row_j.iter_mut()) {
                    let fj = *xj;
                    *xj = s * *xi + c * fj;
                    *xi = c * *xi - s * fj;
                }
            }
            if underflow {
                continue;
            }
            diag[l] -= p;
            off[l] = g;
            off[m] = 0.0;
        }
    }
    Ok(())
}

/// Dot product in f64 with four accumulators (vectorises well).
pub fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4 * 4;
    for (ca, cb) in a[..chunks].chunks_exact(4).zip(b[..chunks].chunks_exact(4)) {
        for t in 0..4 {
            acc[t] += ca[t] * cb[t];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Dot product in f32 with eight accumulators (vectorises well).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for t in 0..8 {
            acc[t] += ca[t] * cb[t];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        tail += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Orthonormalises the rows of the `k × n` row-major matrix `rows` in place by modified
/// Gram–Schmidt, run twice ("twice is enough"). Fails if the rows are (numerically)
/// linearly dependent.
pub fn orthonormalize_rows(rows: &mut [f64], k: usize, n: usize) -> Result<()> {
    for pass in 0..2 {
        for i in 0..k {
            let (done, rest) = rows.split_at_mut(i * n);
            let row = &mut rest[..n];
            let before = dot_f64(row, row).sqrt();
            for j in 0..i {
                let q = &done[j * n..(j + 1) * n];
                let c = dot_f64(row, q);
                for (x, &qj) in row.iter_mut().zip(q) {
                    *x -= c * qj;
                }
            }
            let norm = dot_f64(row, row).sqrt();
            // After the first pass rows are unit length; a row that loses almost all of
            // its norm to the earlier ones is dependent on them.
            let reference = if pass == 0 { before } else { 1.0 };
            if !norm.is_finite() || norm <= 1e-10 * reference {
                return Err(CodecError::Numerical(format!(
                    "row {i} is linearly dependent on the previous rows"
                )));
            }
            for x in row.iter_mut() {
                *x /= norm;
            }
        }
    }
    Ok(())
}

/// A random orthogonal `n × n` matrix (row-major), Haar distributed: Gram–Schmidt (QR)
/// of a seeded Gaussian matrix. Deterministic for a given `(n, seed)`.
pub fn random_orthogonal(n: usize, seed: u64) -> Result<Vec<f64>> {
    let mut rng = SplitMix64::new(seed);
    let mut m: Vec<f64> = (0..n * n).map(|_| rng.gaussian()).collect();
    orthonormalize_rows(&mut m, n, n)?;
    Ok(m)
}

/// `c = a · b` for row-major `a: m × k`, `b: k × n`, `c: m × n` (f32), split over rayon
/// threads by blocks of output rows.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_impl(a, false, b, false, c, m, k, n);
}

/// `c = a · bᵀ` for row-major `a: m × k`, `b: n × k`, `c: m × n` (f32), split over rayon
/// threads by blocks of output rows.
pub fn matmul_nt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_impl(a, false, b, true, c, m, k, n);
}

/// `c = aᵀ · b` for row-major `a: k × m`, `b: k × n`, `c: m × n` (f32), split over rayon
/// threads by blocks of output rows.
pub fn matmul_tn(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_impl(a, true, b, false, c, m, k, n);
}

/// Shared body of the products above.
///
/// # Panics
/// If a slice length does not match its shape (a bug in the calling code: these helpers
/// are only called with sizes computed from already validated dimensions).
#[allow(clippy::too_many_arguments)]
fn matmul_impl(
    a: &[f32],
    a_transposed: bool,
    b: &[f32],
    b_transposed: bool,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    assert_eq!(a.len(), m * k, "matmul: a has the wrong size");
    assert_eq!(b.len(), k * n, "matmul: b has the wrong size");
    assert_eq!(c.len(), m * n, "matmul: c has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    // The `from_shape(..).expect` calls below cannot fail: the asserts above fix each
    // slice's length to exactly rows × columns, and a contiguous slice of that length
    // always forms a standard-layout view (`c_block` is `rows × n` by construction).
    let b = if b_transposed {
        ArrayView2::from_shape((n, k), b)
            .expect("b shape checked above")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((k, n), b).expect("b shape checked above")
    };
    let a_full = if a_transposed {
        ArrayView2::from_shape((k, m), a)
            .expect("a shape checked above")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((m, k), a).expect("a shape checked above")
    };
    // Blocks of 64 rows keep every thread busy and each GEMM call large enough.
    let block = 64.max(m.div_ceil(4 * rayon::current_num_threads().max(1)));
    c.par_chunks_mut(block * n)
        .enumerate()
        .for_each(|(bi, c_block)| {
            let rows = c_block.len() / n;
            let start = bi * block;
            let a_block = a_full.slice_axis(Axis(0), (start..start + rows).into());
            let mut c_view = ArrayViewMut2::from_shape((rows, n), c_block).expect("block shape");
            general_mat_mul(1.0, &a_block, &b, 0.0, &mut c_view);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn rng_is_deterministic_and_gaussian_has_unit_variance() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| a.gaussian()).collect();
        let ys: Vec<f64> = (0..20_000).map(|_| b.gaussian()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        let mut c = SplitMix64::new(8);
        assert_ne!(c.gaussian(), xs[0]);
        assert!((0..1000).all(|_| c.next_below(10) < 10));
    }

    #[test]
    fn eigen_recovers_known_spectrum() {
        let n = 40;
        let q = random_orthogonal(n, 3).unwrap();
        let wanted: Vec<f64> = (0..n).map(|i| (n - i) as f64 * 0.5 - 3.0).collect();
        // A = Qᵀ diag(wanted) Q (rows of q are the eigenvectors).
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n)
                    .map(|t| q[t * n + i] * wanted[t] * q[t * n + j])
                    .sum();
            }
        }
        let eig = sym_eigen(a.clone(), n).unwrap();
        for (got, want) in eig.values.iter().zip(&wanted) {
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        for i in 0..n {
            let v = &eig.vectors[i * n..(i + 1) * n];
            // A v = λ v
            for r in 0..n {
                let av = dot_f64(&a[r * n..(r + 1) * n], v);
                assert!((av - eig.values[i] * v[r]).abs() < 1e-9);
            }
            for j in 0..n {
                let d = dot_f64(v, &eig.vectors[j * n..(j + 1) * n]);
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn eigen_handles_tiny_diagonal_and_repeated_cases() {
        assert_eq!(sym_eigen(vec![4.0], 1).unwrap().values, vec![4.0]);
        let eig = sym_eigen(vec![2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert!((eig.values[0] - 3.0).abs() < 1e-12 && (eig.values[1] - 1.0).abs() < 1e-12);
        let mut ident = vec![0.0; 9];
        ident[0] = 1.0;
        ident[4] = 1.0;
        ident[8] = 1.0;
        let eig = sym_eigen(ident, 3).unwrap();
        assert!(eig.values.iter().all(|v| (v - 1.0).abs() < 1e-12));
        assert!(sym_eigen(vec![1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
        assert!(sym_eigen(vec![1.0; 3], 2).is_err());
    }

    #[test]
    fn random_orthogonal_is_orthogonal_and_seeded() {
        let n = 17;
        let q = random_orthogonal(n, 11).unwrap();
        for i in 0..n {
            for j in 0..n {
                let d = dot_f64(&q[i * n..(i + 1) * n], &q[j * n..(j + 1) * n]);
                assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert_eq!(q, random_orthogonal(n, 11).unwrap());
        assert_ne!(q, random_orthogonal(n, 12).unwrap());
    }

    #[test]
    fn dependent_rows_are_an_error() {
        let mut rows = vec![1.0, 2.0, 3.0, 2.0, 4.0, 6.0];
        assert!(orthonormalize_rows(&mut rows, 2, 3).is_err());
    }

    #[test]
    fn matmul_matches_naive() {
        let mut rng = SplitMix64::new(1);
        let (m, k, n) = (150, 37, 23);
        let a: Vec<f32> = (0..m * k).map(|_| rng.gaussian() as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.gaussian() as f32).collect();
        let mut c = vec![0.0; m * n];
        matmul(&a, &b, &mut c, m, k, n);
        let want = naive_matmul(&a, &b, m, k, n);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4));
        // aᵀ stored k × m
        let mut at = vec![0.0; m * k];
        for i in 0..m {
            for t in 0..k {
                at[t * m + i] = a[i * k + t];
            }
        }
        let mut c2 = vec![0.0; m * n];
        matmul_tn(&at, &b, &mut c2, m, k, n);
        assert!(c2.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4));
        // bᵀ stored n × k
        let mut bt = vec![0.0; k * n];
        for t in 0..k {
            for j in 0..n {
                bt[j * k + t] = b[t * n + j];
            }
        }
        let mut c3 = vec![0.0; m * n];
        matmul_nt(&a, &bt, &mut c3, m, k, n);
        assert!(c3.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4));
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        assert_eq!(dot_f32(&x, &x), 285.0);
    }
}
