//! The optional pre-transform stage of an index model (`PCA…` in the spec): a PCA fitted
//! on the training set (optionally whitened and/or followed by a random rotation), applied
//! to every added vector and every query.

use crate::error::Result;
use crate::pca::{Pca, PcaOptions};
use crate::spec::PcaStage;

/// A fitted pre-transform.
#[derive(Debug, Clone)]
pub struct PreTransform {
    pca: Pca,
}

impl PreTransform {
    /// Fits the stage on `data` (contiguous rows of `dim`).
    pub fn fit(stage: &PcaStage, data: &[f32], dim: usize, seed: u64) -> Result<Self> {
        let opts = PcaOptions {
            d_out: stage.d_out,
            eigen_power: if stage.whiten { -0.5 } else { 0.0 },
            random_rotation: stage.rotate,
            seed,
        };
        Ok(PreTransform { pca: Pca::fit(data, dim, &opts)? })
    }

    /// Wraps an already fitted (e.g. deserialised) PCA.
    pub fn from_pca(pca: Pca) -> Self {
        PreTransform { pca }
    }

    /// The underlying PCA (for serialisation).
    pub fn pca(&self) -> &Pca {
        &self.pca
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.pca.d_in()
    }

    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.pca.d_out()
    }

    /// Transforms many rows (contiguous, `d_in` each).
    pub fn apply(&self, data: &[f32]) -> Result<Vec<f32>> {
        self.pca.apply(data)
    }

    /// Transforms one row into `out` (`d_out` floats), without allocating.
    pub fn apply_into(&self, row: &[f32], out: &mut [f32]) {
        self.pca.apply_into(row, out);
    }

    /// Bytes of parameters (mean, matrix, eigenvalues).
    pub fn bytes(&self) -> usize {
        (self.pca.mean().len() + self.pca.matrix().len() + self.pca.eigenvalues().len()) * 4
    }
}
