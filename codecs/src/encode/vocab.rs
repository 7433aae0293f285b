//! Visual-vocabulary training shared by the VLAD and BoF encoders: k-means on the
//! preprocessed training sample, repeated from several seeds, keeping the run with the
//! lowest k-means objective (sum of squared distances to the nearest word).
//!
//! A single k-means run from random points lands in one of many local minima, and on
//! image-retrieval sets the retrieval quality of the resulting VLAD changes noticeably
//! from seed to seed. Restarting and keeping the best objective is the standard remedy
//! (FAISS calls it `nredo`); it costs one k-means run per restart.

use crate::error::{CodecError, Result};
use crate::kmeans::{KMeans, KMeansParams};

/// How a vocabulary is trained.
#[derive(Debug, Clone)]
pub struct VocabParams {
    /// The k-means run (iterations, seed, init, subsampling). Restart `r` uses the seed
    /// [`restart_seed`]`(kmeans.seed, r)`; restart 0 uses `kmeans.seed` itself.
    pub kmeans: KMeansParams,
    /// Number of k-means runs; the one with the lowest objective wins. At least 1.
    pub restarts: usize,
}

impl Default for VocabParams {
    /// The k-means defaults, one run.
    fn default() -> Self {
        VocabParams {
            kmeans: KMeansParams::default(),
            restarts: 1,
        }
    }
}

/// The seed of restart `r` of a vocabulary trained with `seed`: `seed` itself for the
/// first run, then well-separated values (a golden-ratio step, as SplitMix64 uses).
pub fn restart_seed(seed: u64, r: usize) -> u64 {
    seed.wrapping_add((r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Trains a `k`-word vocabulary on `sample` (preprocessed rows of `dim`): `restarts`
/// k-means runs, the lowest objective wins (ties: the earlier run). With one run the
/// result is exactly [`KMeans::train`]'s. With several, each run's objective is measured
/// on the whole sample (a run may have trained on a subsample of its own), so the runs
/// are compared on the same points. Errors as [`KMeans::train`], and for
/// `restarts == 0`.
pub fn train_vocabulary(
    sample: &[f32],
    dim: usize,
    k: usize,
    params: &VocabParams,
) -> Result<KMeans> {
    if params.restarts == 0 {
        return Err(CodecError::InvalidParameter(
            "vocabulary training needs at least one k-means run".into(),
        ));
    }
    let mut best: Option<KMeans> = None;
    for r in 0..params.restarts {
        let run = KMeansParams {
            seed: restart_seed(params.kmeans.seed, r),
            ..params.kmeans.clone()
        };
        let mut km = KMeans::train(sample, dim, k, &run)?;
        if params.restarts > 1 {
            km.objective = km.assign(sample)?.iter().map(|a| f64::from(a.1)).sum();
        }
        if params.kmeans.verbose {
            eprintln!("vocab restart {r}: objective {:.6e}", km.objective);
        }
        if best.as_ref().is_none_or(|b| km.objective < b.objective) {
            best = Some(km);
        }
    }
    best.ok_or_else(|| CodecError::InvalidParameter("no k-means run".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::tests::blobs;

    #[test]
    fn one_run_is_plain_kmeans_and_more_runs_never_worsen_the_objective() {
        let dim = 4;
        let data = blobs(12, 40, dim, 3);
        let kmeans = KMeansParams {
            seed: 9,
            iterations: 5,
            max_points_per_centroid: usize::MAX,
            ..KMeansParams::default()
        };
        let one = VocabParams {
            kmeans: kmeans.clone(),
            restarts: 1,
        };
        let single = train_vocabulary(&data, dim, 8, &one).unwrap();
        assert_eq!(single, KMeans::train(&data, dim, 8, &kmeans).unwrap());
        let best = train_vocabulary(&data, dim, 8, &VocabParams { restarts: 4, ..one }).unwrap();
        // The winner is one of the four runs, with the smallest objective of them.
        let objectives: Vec<f64> = (0..4)
            .map(|r| {
                let p = KMeansParams {
                    seed: restart_seed(9, r),
                    ..kmeans.clone()
                };
                KMeans::train(&data, dim, 8, &p).unwrap().objective
            })
            .collect();
        let min = objectives.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            (best.objective - min).abs() <= 1e-9 * min.max(1.0),
            "{objectives:?}"
        );
        assert!(
            objectives.iter().any(|&o| o > min),
            "runs should differ: {objectives:?}"
        );
        assert!(
            train_vocabulary(
                &data,
                dim,
                8,
                &VocabParams {
                    restarts: 0,
                    ..VocabParams::default()
                }
            )
            .is_err()
        );
    }
}
