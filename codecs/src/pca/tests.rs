//! Tests for the PCA on generated data with a known covariance.

use super::*;
use crate::linalg::{SplitMix64, random_orthogonal};

/// `n` rows of `x = offset + Qᵀ (sqrt(λ) ⊙ g)`: a rotated diagonal Gaussian whose
/// covariance has eigenvalues `variances` and eigenvectors the rows of `Q`.
fn rotated_gaussian(n: usize, variances: &[f64], seed: u64) -> (Vec<f32>, Vec<f64>) {
    let d = variances.len();
    let q = random_orthogonal(d, seed ^ 99).unwrap();
    let mut rng = SplitMix64::new(seed);
    let mut data = Vec::with_capacity(n * d);
    for _ in 0..n {
        let g: Vec<f64> = variances
            .iter()
            .map(|v| v.sqrt() * rng.gaussian())
            .collect();
        for j in 0..d {
            let x: f64 = (0..d).map(|i| q[i * d + j] * g[i]).sum();
            data.push((x + 3.0 + j as f64) as f32);
        }
    }
    (data, q)
}

fn spectrum(d: usize) -> Vec<f64> {
    (0..d).map(|i| 20.0 * 0.7f64.powi(i as i32)).collect()
}

/// Population covariance of the rows of `y` (`k` columns).
fn covariance(y: &[f32], k: usize) -> Vec<f64> {
    let n = y.len() / k;
    let mut mean = vec![0.0f64; k];
    for row in y.chunks_exact(k) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += x as f64 / n as f64);
    }
    let mut cov = vec![0.0f64; k * k];
    for row in y.chunks_exact(k) {
        for i in 0..k {
            for j in 0..k {
                cov[i * k + j] += (row[i] as f64 - mean[i]) * (row[j] as f64 - mean[j]) / n as f64;
            }
        }
    }
    cov
}

fn assert_rows_orthonormal(m: &[f32], rows: usize, dim: usize, tol: f64) {
    for i in 0..rows {
        for j in 0..rows {
            let dot: f64 = (0..dim)
                .map(|t| m[i * dim + t] as f64 * m[j * dim + t] as f64)
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < tol, "rows {i},{j}: {dot}");
        }
    }
}

const ROUTES: [PcaRoute; 3] = [PcaRoute::Linfa, PcaRoute::Covariance, PcaRoute::Randomized];

#[test]
fn every_route_recovers_the_known_covariance() {
    let variances = spectrum(12);
    let n = 4000;
    let (data, q) = rotated_gaussian(n, &variances, 1);
    let exact = Pca::fit_with_route(&data, 12, &PcaOptions::new(4), PcaRoute::Covariance).unwrap();
    for route in ROUTES {
        let pca = Pca::fit_with_route(&data, 12, &PcaOptions::new(4), route).unwrap();
        assert_eq!(pca.route(), Some(route));
        assert_eq!((pca.d_in(), pca.d_out()), (12, 4));
        for (j, m) in pca.mean().iter().enumerate() {
            assert!((m - (3.0 + j as f32)).abs() < 0.3, "mean {j}: {m}");
        }
        for (i, (&got, &want)) in pca.eigenvalues().iter().zip(&variances).enumerate() {
            // Sampling error of a variance estimate is about sqrt(2/n) ≈ 2.2 %.
            assert!(
                (got as f64 - want).abs() < 0.08 * want,
                "{route:?} eigenvalue {i}: {got} vs {want}"
            );
            // All routes agree with the exact one far more tightly than with the truth.
            let e = exact.eigenvalues()[i];
            assert!(
                (got - e).abs() < 1e-3 * e,
                "{route:?} vs exact {i}: {got} vs {e}"
            );
        }
        assert_rows_orthonormal(pca.matrix(), 4, 12, 1e-5);
        for i in 0..4 {
            let align: f64 = (0..12)
                .map(|t| pca.matrix()[i * 12 + t] as f64 * q[i * 12 + t])
                .sum();
            assert!(
                align.abs() > 0.97,
                "{route:?} component {i} alignment {align}"
            );
        }
        let kept: f64 = variances[..4].iter().sum::<f64>() / variances.iter().sum::<f64>();
        assert!((pca.explained_variance_ratio() as f64 - kept).abs() < 0.02);
        assert!((pca.explained_variance_ratio() - exact.explained_variance_ratio()).abs() < 1e-4);
    }
}

#[test]
fn randomized_matches_exact_on_a_wider_input() {
    let d = 160;
    let variances: Vec<f64> = (0..d).map(|i| 1.0 / (1.0 + i as f64).powf(0.8)).collect();
    let (data, _) = rotated_gaussian(800, &variances, 5);
    let opts = PcaOptions::new(24);
    let exact = Pca::fit_with_route(&data, d, &opts, PcaRoute::Covariance).unwrap();
    let fast = Pca::fit_with_route(&data, d, &opts, PcaRoute::Randomized).unwrap();
    for (a, b) in exact.eigenvalues().iter().zip(fast.eigenvalues()) {
        assert!((a - b).abs() < 2e-3 * a, "{a} vs {b}");
    }
    let (ea, eb) = (
        exact.reconstruction_error(&data).unwrap(),
        fast.reconstruction_error(&data).unwrap(),
    );
    assert!(
        eb >= ea * (1.0 - 1e-5) && eb < ea * 1.001,
        "exact {ea}, randomized {eb}"
    );
    assert_rows_orthonormal(fast.matrix(), 24, d, 1e-5);
    // Same seed, same result.
    let again = Pca::fit_with_route(&data, d, &opts, PcaRoute::Randomized).unwrap();
    assert_eq!(fast.matrix(), again.matrix());
}

#[test]
fn randomized_survives_rank_deficient_data() {
    // 5 independent directions embedded in 64 dimensions, 12 components asked.
    let mut rng = SplitMix64::new(4);
    let basis: Vec<f64> = (0..5 * 64).map(|_| rng.gaussian()).collect();
    let mut data = Vec::new();
    for _ in 0..200 {
        let g: Vec<f64> = (0..5).map(|_| rng.gaussian()).collect();
        for j in 0..64 {
            data.push((0..5).map(|i| g[i] * basis[i * 64 + j]).sum::<f64>() as f32);
        }
    }
    let pca = Pca::fit_with_route(&data, 64, &PcaOptions::new(12), PcaRoute::Randomized).unwrap();
    assert_rows_orthonormal(pca.matrix(), 12, 64, 1e-5);
    assert!(pca.explained_variance_ratio() > 0.9999);
    assert!(
        pca.eigenvalues()[5..]
            .iter()
            .all(|&v| v < 1e-4 * pca.eigenvalues()[0])
    );
    // linfa drops the null directions; the covariance route completes the fit.
    let via_linfa = Pca::fit_with_route(&data, 64, &PcaOptions::new(12), PcaRoute::Linfa).unwrap();
    assert_rows_orthonormal(via_linfa.matrix(), 12, 64, 1e-5);
}

#[test]
fn whitening_gives_unit_variance() {
    let variances = spectrum(10);
    let (data, _) = rotated_gaussian(3000, &variances, 2);
    for route in ROUTES {
        let opts = PcaOptions {
            d_out: 6,
            eigen_power: -0.5,
            random_rotation: false,
            seed: 0,
        };
        let pca = Pca::fit_with_route(&data, 10, &opts, route).unwrap();
        let y = pca.apply(&data).unwrap();
        let cov = covariance(&y, 6);
        for i in 0..6 {
            for j in 0..6 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (cov[i * 6 + j] - want).abs() < 2e-3,
                    "{route:?} cov[{i},{j}] = {}",
                    cov[i * 6 + j]
                );
            }
        }
    }
}

#[test]
fn rotation_is_orthogonal_seeded_and_keeps_the_subspace() {
    let (data, _) = rotated_gaussian(2000, &spectrum(16), 3);
    let plain = Pca::fit(&data, 16, &PcaOptions::new(8)).unwrap();
    let rotated_opts = PcaOptions {
        d_out: 8,
        eigen_power: 0.0,
        random_rotation: true,
        seed: 42,
    };
    let rotated = Pca::fit(&data, 16, &rotated_opts).unwrap();
    assert_rows_orthonormal(rotated.matrix(), 8, 16, 1e-5);
    assert_ne!(plain.matrix(), rotated.matrix());
    // R = A_rot · A_plainᵀ is orthogonal.
    let mut r = vec![0.0f32; 64];
    for i in 0..8 {
        for j in 0..8 {
            r[i * 8 + j] = (0..16)
                .map(|t| rotated.matrix()[i * 16 + t] * plain.matrix()[j * 16 + t])
                .sum();
        }
    }
    assert_rows_orthonormal(&r, 8, 8, 1e-4);
    // Rotation balances variance: the output variances are far closer to each other.
    let cov = covariance(&rotated.apply(&data).unwrap(), 8);
    let diag: Vec<f64> = (0..8).map(|i| cov[i * 8 + i]).collect();
    let (lo, hi) = diag
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi / lo < plain.eigenvalues()[0] as f64 / plain.eigenvalues()[7] as f64);
    // The sub-space is unchanged, so the reconstruction error is too.
    let (ep, er) = (
        plain.reconstruction_error(&data).unwrap(),
        rotated.reconstruction_error(&data).unwrap(),
    );
    assert!((ep - er).abs() < 1e-4 * ep.max(1e-3), "{ep} vs {er}");
    let again = Pca::fit(&data, 16, &rotated_opts).unwrap();
    assert_eq!(rotated.matrix(), again.matrix());
    let other = Pca::fit(
        &data,
        16,
        &PcaOptions {
            seed: 43,
            ..rotated_opts
        },
    )
    .unwrap();
    assert_ne!(rotated.matrix(), other.matrix());
}

#[test]
fn full_dimension_reconstructs_exactly_and_error_is_the_dropped_variance() {
    let variances = spectrum(9);
    let (data, _) = rotated_gaussian(1500, &variances, 6);
    for route in ROUTES {
        let full = Pca::fit_with_route(&data, 9, &PcaOptions::new(9), route).unwrap();
        let err = full.reconstruction_error(&data).unwrap();
        assert!(err < 1e-6 * full.total_variance(), "{route:?}: {err}");
        assert!((full.explained_variance_ratio() - 1.0).abs() < 1e-5);
        let part = Pca::fit_with_route(&data, 9, &PcaOptions::new(3), route).unwrap();
        let dropped = part.total_variance() - part.eigenvalues().iter().sum::<f32>();
        let err = part.reconstruction_error(&data).unwrap();
        assert!(
            (err - dropped).abs() < 1e-3 * dropped,
            "{route:?}: {err} vs {dropped}"
        );
    }
}

#[test]
fn apply_and_apply_into_agree() {
    let (data, _) = rotated_gaussian(700, &spectrum(20), 7);
    let opts = PcaOptions {
        d_out: 5,
        eigen_power: -0.5,
        random_rotation: true,
        seed: 1,
    };
    let pca = Pca::fit(&data, 20, &opts).unwrap();
    let batch = pca.apply(&data).unwrap();
    let mut one = vec![0.0f32; 5];
    for (row, want) in data.chunks_exact(20).zip(batch.chunks_exact(5)) {
        pca.apply_into(row, &mut one);
        for (a, b) in one.iter().zip(want) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
    assert!(pca.apply(&data[..19]).is_err());
    assert!(pca.apply(&[]).unwrap().is_empty());
}

#[test]
fn from_parts_round_trips_and_validates() {
    let (data, _) = rotated_gaussian(900, &spectrum(12), 8);
    let opts = PcaOptions {
        d_out: 4,
        eigen_power: -0.5,
        random_rotation: true,
        seed: 9,
    };
    let pca = Pca::fit(&data, 12, &opts).unwrap();
    let rebuilt = Pca::from_parts(
        pca.mean().to_vec(),
        pca.matrix().to_vec(),
        pca.eigenvalues().to_vec(),
        12,
        4,
    )
    .unwrap()
    .with_total_variance(pca.total_variance())
    .unwrap();
    assert_eq!(pca.apply(&data).unwrap(), rebuilt.apply(&data).unwrap());
    assert_eq!(
        pca.explained_variance_ratio(),
        rebuilt.explained_variance_ratio()
    );
    let (a, b) = (
        pca.reconstruction_error(&data).unwrap(),
        rebuilt.reconstruction_error(&data).unwrap(),
    );
    assert!((a - b).abs() < 1e-4 * a, "{a} vs {b}");

    let (m, a, e) = (
        pca.mean().to_vec(),
        pca.matrix().to_vec(),
        pca.eigenvalues().to_vec(),
    );
    assert!(Pca::from_parts(m[..11].to_vec(), a.clone(), e.clone(), 12, 4).is_err());
    assert!(Pca::from_parts(m.clone(), a[..40].to_vec(), e.clone(), 12, 4).is_err());
    assert!(Pca::from_parts(m.clone(), a.clone(), e[..3].to_vec(), 12, 4).is_err());
    assert!(Pca::from_parts(m.clone(), a.clone(), e.clone(), 12, 13).is_err());
    assert!(Pca::from_parts(m.clone(), a.clone(), e.clone(), 0, 0).is_err());
    let mut dependent = a.clone();
    let first_row = dependent[..12].to_vec();
    dependent[12..24].copy_from_slice(&first_row);
    assert!(Pca::from_parts(m.clone(), dependent, e.clone(), 12, 4).is_err());
    let mut nan = a.clone();
    nan[3] = f32::NAN;
    assert!(Pca::from_parts(m.clone(), nan, e.clone(), 12, 4).is_err());
    let negative = vec![-1.0f32; 4];
    assert!(Pca::from_parts(m.clone(), a.clone(), negative, 12, 4).is_err());
    let built = Pca::from_parts(m, a, e, 12, 4).unwrap();
    assert!(built.clone().with_total_variance(0.0).is_err());
    assert!(built.with_total_variance(f32::INFINITY).is_err());
}

#[test]
fn bad_parameters_are_errors() {
    let (data, _) = rotated_gaussian(10, &spectrum(4), 10);
    let fit = |data: &[f32], dim: usize, d_out: usize| Pca::fit(data, dim, &PcaOptions::new(d_out));
    assert!(matches!(
        fit(&data, 4, 5),
        Err(CodecError::InvalidParameter(_))
    ));
    assert!(matches!(
        fit(&data, 4, 0),
        Err(CodecError::InvalidParameter(_))
    ));
    assert!(matches!(
        fit(&data, 0, 1),
        Err(CodecError::InvalidParameter(_))
    ));
    assert!(matches!(
        fit(&data[..4], 4, 1),
        Err(CodecError::NotEnoughPoints { .. })
    ));
    assert!(matches!(
        fit(&data[..12], 4, 3),
        Err(CodecError::NotEnoughPoints { .. })
    ));
    assert!(fit(&data[..12], 4, 2).is_ok());
    assert!(matches!(
        fit(&data[..39], 4, 2),
        Err(CodecError::DimensionMismatch { .. })
    ));
    let mut nan = data.clone();
    nan[4 * 7 + 2] = f32::NAN;
    assert_eq!(
        fit(&nan, 4, 2).unwrap_err(),
        CodecError::NonFinite { row: 7 }
    );
    nan[4 * 7 + 2] = f32::INFINITY;
    assert!(fit(&nan, 4, 2).is_err());
    for power in [0.5, -1.5, f32::NAN, f32::NEG_INFINITY] {
        let opts = PcaOptions {
            eigen_power: power,
            ..PcaOptions::new(2)
        };
        assert!(matches!(
            Pca::fit(&data, 4, &opts),
            Err(CodecError::InvalidParameter(_))
        ));
    }
}

#[test]
fn constant_data_does_not_blow_up_whitening() {
    let data = vec![1.5f32; 8 * 30];
    let opts = PcaOptions {
        d_out: 3,
        eigen_power: -0.5,
        random_rotation: true,
        seed: 0,
    };
    for route in ROUTES {
        let pca = Pca::fit_with_route(&data, 8, &opts, route).unwrap();
        assert!(pca.matrix().iter().all(|x| x.is_finite()), "{route:?}");
        assert!(pca.apply(&data).unwrap().iter().all(|x| x.is_finite()));
        assert_eq!(pca.explained_variance_ratio(), 1.0);
    }
}

#[test]
fn auto_route_rule() {
    assert_eq!(pick_route(5000, 128, 64), PcaRoute::Linfa);
    assert_eq!(
        pick_route(5000, LINFA_MAX_DIM + 1, 64),
        PcaRoute::Covariance
    );
    assert_eq!(pick_route(1_000_000, 128, 64), PcaRoute::Covariance);
    assert_eq!(
        pick_route(5000, COVARIANCE_MAX_DIM, 128),
        PcaRoute::Covariance
    );
    assert_eq!(pick_route(5000, 8192, 256), PcaRoute::Randomized);
    assert_eq!(pick_route(5000, 2048, 1024), PcaRoute::Covariance);
    assert_eq!(pick_route(5000, 1024, 128), PcaRoute::Randomized);
    assert_eq!(pick_route(5000, 8192, 4096), PcaRoute::Randomized);
}
