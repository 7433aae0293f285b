//! Improved Fisher vectors (Perronnin, Sánchez & Mensink 2010): the gradient of an image's
//! log-likelihood under a diagonal GMM with respect to the means and variances, each
//! normalised by the (diagonal, closed-form) Fisher information, then signed power law
//! and L2.
//!
//! For an image with `T` descriptors and posteriors `γ_t(k)`:
//! `G_μ,k = 1/(T√π_k) Σ_t γ_t(k) (x_t − μ_k)/σ_k` and
//! `G_σ,k = 1/(T√(2π_k)) Σ_t γ_t(k) [(x_t − μ_k)²/σ²_k − 1]`, concatenated as
//! `[G_μ,1 … G_μ,K, G_σ,1 … G_σ,K]` (`2·K·dim` components).

use std::any::Any;

use super::gmm::{DiagGmm, GmmParams};
use super::norm::{l2_normalize, power_law};
use super::sets::root_sift_rows;
use super::{SetEncoder, check_batch, check_rows};
use crate::error::{CodecError, Result};

/// Options of a Fisher-vector encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FisherParams {
    /// Apply RootSIFT to every descriptor first.
    pub root_sift: bool,
    /// Signed power-law exponent, or `None` for none. Default 0.5.
    pub power: Option<f32>,
}

impl Default for FisherParams {
    fn default() -> Self {
        FisherParams {
            root_sift: true,
            power: Some(0.5),
        }
    }
}

/// A trained Fisher-vector encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct FisherEncoder {
    /// The generative vocabulary.
    pub gmm: DiagGmm,
    /// Options.
    pub params: FisherParams,
}

impl FisherEncoder {
    /// An encoder from stored parts.
    pub fn from_parts(gmm: DiagGmm, params: FisherParams) -> Result<Self> {
        if let Some(a) = params.power
            && !(a.is_finite() && a > 0.0)
        {
            return Err(CodecError::InvalidParameter(format!(
                "Fisher power-law exponent must be positive, got {a}"
            )));
        }
        Ok(FisherEncoder { gmm, params })
    }

    /// Trains the GMM on `sample` (raw descriptors, rows of `dim`, preprocessed in place).
    pub fn train(
        mut sample: Vec<f32>,
        dim: usize,
        k: usize,
        params: FisherParams,
        gmm_params: &GmmParams,
    ) -> Result<Self> {
        check_rows(&sample, dim)?;
        if params.root_sift {
            root_sift_rows(&mut sample, dim);
        }
        let (gmm, _) = DiagGmm::train(&sample, dim, k, gmm_params)?;
        Self::from_parts(gmm, params)
    }
}

impl SetEncoder for FisherEncoder {
    fn spec_token(&self) -> String {
        let mut s = format!("FV{}", self.gmm.k);
        match self.params.power {
            None => s.push_str("_nopow"),
            Some(a) if a != 0.5 => s.push_str(&format!("_pow{a}")),
            Some(_) => {}
        }
        if !self.params.root_sift {
            s.push_str("_noroot");
        }
        s
    }

    fn dim_in(&self) -> usize {
        self.gmm.dim
    }

    fn dim_out(&self) -> usize {
        2 * self.gmm.k * self.gmm.dim
    }

    fn preprocess(&self, descriptors: &mut [f32]) {
        if self.params.root_sift {
            root_sift_rows(descriptors, self.gmm.dim);
        }
    }

    fn encode_prepared(
        &self,
        descriptors: &[f32],
        bounds: &[usize],
        out: &mut [f32],
    ) -> Result<()> {
        let g = &self.gmm;
        let (dim, k) = (g.dim, g.k);
        let dim_out = self.dim_out();
        let images = check_batch(descriptors, bounds, dim, out, dim_out)?;
        let cache = g.cache();
        let mut gamma = vec![0.0f32; k];
        let mut z = vec![0.0f32; dim];
        for i in 0..images {
            let code = &mut out[i * dim_out..(i + 1) * dim_out];
            code.fill(0.0);
            let (s, e) = (bounds[i], bounds[i + 1]);
            if s == e {
                continue;
            }
            let (g_mu, g_sigma) = code.split_at_mut(k * dim);
            for x in descriptors[s * dim..e * dim].chunks_exact(dim) {
                g.posterior_into(&cache, x, &mut gamma);
                for (j, &w) in gamma.iter().enumerate() {
                    if w == 0.0 {
                        continue;
                    }
                    let r = j * dim..(j + 1) * dim;
                    for (((zd, xd), m), is) in z
                        .iter_mut()
                        .zip(x)
                        .zip(&g.means[r.clone()])
                        .zip(&cache.inv_std[r.clone()])
                    {
                        *zd = (xd - m) * is;
                    }
                    for ((gm, gs), &zd) in g_mu[r.clone()].iter_mut().zip(&mut g_sigma[r]).zip(&z) {
                        *gm += w * zd;
                        *gs += w * (zd * zd - 1.0);
                    }
                }
            }
            let t = (e - s) as f32;
            for j in 0..k {
                let pi = g.weights[j];
                let (a, b) = (1.0 / (t * pi.sqrt()), 1.0 / (t * (2.0 * pi).sqrt()));
                g_mu[j * dim..(j + 1) * dim]
                    .iter_mut()
                    .for_each(|v| *v *= a);
                g_sigma[j * dim..(j + 1) * dim]
                    .iter_mut()
                    .for_each(|v| *v *= b);
            }
            if let Some(a) = self.params.power {
                power_law(code, a);
            }
            l2_normalize(code);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
