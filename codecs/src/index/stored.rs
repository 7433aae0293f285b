//! Loading and saving a trained [`IndexModel`]: the parts a model file stores
//! ([`StoredParts`], borrowed for writing) and reassembling a model from them
//! ([`StoredModel`], checked against its spec; nothing is recomputed).

use super::model::{IndexModel, Quantizer, pq_shape, validate_spec};
use super::pre::PreTransform;
use crate::error::{CodecError, Result};
use crate::ivf::{CoarseQuantizer, PrecomputedTables};
use crate::spec::{IndexSpec, QuantizerSpec};

/// Everything a stored model is made of, for loading it back (see
/// [`IndexModel::from_stored`]). The precomputed tables may live in a shared buffer (a
/// memory-mapped file), given with their per-list length.
pub struct StoredModel {
    pub spec: IndexSpec,
    pub dim: usize,
    pub pca: Option<crate::pca::Pca>,
    pub coarse: Option<CoarseQuantizer>,
    pub quantizer: Quantizer,
    pub tables: Option<(crate::ivf::SharedFloats, usize)>,
}

/// Borrowed parts of a model, for serialising it.
pub struct StoredParts<'a> {
    pub pca: Option<&'a crate::pca::Pca>,
    pub coarse: Option<&'a CoarseQuantizer>,
    pub quantizer: &'a Quantizer,
    /// The precomputed tables (all lists) and their per-list length.
    pub tables: Option<(&'a [f32], usize)>,
}

impl IndexModel {
    /// The parts to serialise.
    pub fn stored_parts(&self) -> StoredParts<'_> {
        StoredParts {
            pca: self.pre.as_ref().map(PreTransform::pca),
            coarse: self.coarse.as_ref(),
            quantizer: &self.quantizer,
            tables: self
                .precomputed
                .as_ref()
                .map(|t| (t.as_slice(), t.lut_len())),
        }
    }

    /// Reassembles a model from stored parts, checking that they fit the spec: PCA
    /// dimensions, list count, quantizer shape, table size. Nothing is recomputed.
    pub fn from_stored(parts: StoredModel) -> Result<Self> {
        let StoredModel {
            spec,
            dim,
            pca,
            coarse,
            quantizer,
            tables,
        } = parts;
        validate_spec(&spec, dim)?;
        let bad = |what: String| Err(CodecError::InvalidParameter(what));
        let pre = match (&spec.pca, pca) {
            (None, None) => None,
            (Some(stage), Some(p)) => {
                if p.d_in() != dim || p.d_out() != stage.d_out {
                    return bad(format!(
                        "stored PCA maps {} to {}, the spec needs {dim} to {}",
                        p.d_in(),
                        p.d_out(),
                        stage.d_out
                    ));
                }
                Some(PreTransform::from_pca(p))
            }
            _ => return bad("stored PCA does not match the spec".into()),
        };
        let inner = spec.inner_dim(dim);
        match (&spec.ivf, &coarse) {
            (None, None) => {}
            (Some(n), Some(c)) if c.nlist() == *n && c.dim() == inner => {}
            _ => return bad("stored coarse quantizer does not match the spec".into()),
        }
        match (&spec.quantizer, &quantizer) {
            (QuantizerSpec::Flat, Quantizer::Flat) => {}
            (QuantizerSpec::Pq { .. } | QuantizerSpec::FastScan { .. }, Quantizer::Pq(pq))
                if (pq.m, pq.nbits) == pq_shape(&spec.quantizer)
                    && pq.dim == inner
                    && pq.is_trained() => {}
            _ => return bad("stored quantizer does not match the spec".into()),
        }
        let precomputed = match (tables, &coarse, &quantizer) {
            (None, _, _) => None,
            (Some((data, lut_len)), Some(c), Quantizer::Pq(pq)) if lut_len == pq.lut_len() => {
                Some(PrecomputedTables::from_shared(data, lut_len, c.nlist())?)
            }
            _ => return bad("stored precomputed tables do not match the model".into()),
        };
        let mut model = IndexModel {
            spec,
            dim,
            pre,
            coarse,
            quantizer,
            precomputed,
            scanner: None,
            pq_norms: Vec::new(),
            warnings: Vec::new(),
            list_rank: std::sync::OnceLock::new(),
            pass_center: std::sync::OnceLock::new(),
        };
        model.finish()?;
        Ok(model)
    }
}
