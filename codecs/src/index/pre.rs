//! The optional pre-transform stage of an index model (`PCA…` in the spec): fitted on
//! the training set, applied to every added vector and every query.

use crate::error::{CodecError, Result};
use crate::spec::PcaStage;

/// A fitted pre-transform. (PCA fitting lives in `crate::pca`; until that module is in,
/// PCA specs fail with a clear error at training time.)
#[derive(Debug, Clone)]
pub struct PreTransform {
    d_in: usize,
    d_out: usize,
}

impl PreTransform {
    /// Fits the stage on `data` (contiguous rows of `dim`).
    pub fn fit(stage: &PcaStage, data: &[f32], dim: usize, _seed: u64) -> Result<Self> {
        let _ = (stage, data, dim);
        Err(CodecError::InvalidParameter(
            "PCA stages are not available yet in this build".into(),
        ))
    }

    /// Input dimension.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Output dimension.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// Transforms many rows (contiguous, `d_in` each).
    pub fn apply(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    /// Bytes of parameters.
    pub fn bytes(&self) -> usize {
        0
    }
}
