//! The optional pre-transform stage of an index model (`PCA…` in the spec): fitted on
//! the training set, applied to every added vector and every query.

use crate::error::Result;
use crate::pca::{Pca, PcaOptions};
use crate::spec::PcaStage;

/// A fitted pre-transform (a PCA projection, optionally whitened and rotated).
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
        Ok(PreTransform {
            pca: Pca::fit(data, dim, &opts)?,
        })
    }

    /// Wraps an existing PCA (e.g. loaded from disk).
    pub fn from_pca(pca: Pca) -> Self {
        PreTransform { pca }
    }

    /// The underlying PCA.
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

    /// Bytes of parameters (mean, matrix, eigenvalues).
    pub fn bytes(&self) -> usize {
        (self.pca.mean().len() + self.pca.matrix().len() + self.pca.eigenvalues().len()) * 4
    }
}
