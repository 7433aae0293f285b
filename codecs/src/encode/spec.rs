//! The encoder token at the front of an index spec (`VLAD64`, `VLAD64_adapt`, `FV64`,
//! `BOF1024`, ...): parsing, the canonical form, and training from descriptor sets.
//!
//! Grammar (see `docs/encoders.md`):
//! `VLAD<K>[i]{_flag}`, `FV<K>{_flag}`, `BOF<K>{_flag}` with flags `nopow`, `pow<a>`,
//! `nointra`, `noroot`, `adapt`, `soft<a>`, `rn` (VLAD), `nopca` (FV), `noidf`, `nosqrt` (BoF), `it<n>`
//! (k-means iterations), `redo<n>` (k-means restarts), `em<n>` (FV EM iterations),
//! `sample<n>` (training descriptors).

use std::fmt;

use super::bof::{BofEncoder, BofParams};
use super::fisher::{FisherEncoder, FisherParams};
use super::gmm::GmmParams;
use super::sets::DescriptorSets;
use super::vlad::{VladEncoder, VladParams};
use super::vocab::VocabParams;
use super::{SetEncoder, sample_descriptors};
use crate::error::{CodecError, Result};
use crate::kmeans::{KMeansInit, KMeansParams};

/// Which encoder a spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderKind {
    /// VLAD: residual sums per visual word.
    Vlad,
    /// Improved Fisher vectors on a diagonal GMM.
    Fisher,
    /// Bag of features (tf-idf histograms).
    Bof,
}

impl EncoderKind {
    fn prefix(self) -> &'static str {
        match self {
            EncoderKind::Vlad => "VLAD",
            EncoderKind::Fisher => "FV",
            EncoderKind::Bof => "BOF",
        }
    }
}

/// Default cap on the number of descriptors sampled to train a vocabulary.
pub const DEFAULT_MAX_TRAIN_DESCRIPTORS: usize = 200_000;

/// A parsed encoder token: what to train and how to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSpec {
    /// The encoder.
    pub kind: EncoderKind,
    /// Visual words (VLAD, BoF) or Gaussian components (FV).
    pub k: usize,
    /// RootSIFT preprocessing (default on; `_noroot`).
    pub root_sift: bool,
    /// Signed power-law exponent for VLAD / FV (default 0.5; `_pow<a>`, `_nopow`).
    pub power: Option<f32>,
    /// VLAD intra-normalisation (default on; `_nointra`).
    pub intra: bool,
    /// VLAD vocabulary adaptation on the training sets (default off; `_adapt`).
    pub adapt: bool,
    /// VLAD soft assignment sharpness (default hard; `_soft<a>`).
    pub soft_alpha: Option<f32>,
    /// VLAD residual normalisation (default off; `_rn`).
    pub residual_norm: bool,
    /// VLAD local coordinate systems: per-word PCA rotations of the blocks before the
    /// power law, fitted on the training sample (default off; `_lcs`).
    pub local_rotations: bool,
    /// FV descriptor rotation into the training sample's principal axes (default on for
    /// FV; `_nopca`). Always off for VLAD and BoF.
    pub descriptor_pca: bool,
    /// BoF idf weights learned from the training sets (default on; `_noidf`).
    pub idf: bool,
    /// BoF square-root term frequencies (default on; `_nosqrt`).
    pub sqrt_tf: bool,
    /// At most this many descriptors are sampled for k-means / EM (`_sample<n>`).
    pub max_train_descriptors: usize,
    /// k-means iterations (`_it<n>`; default 20, BoF 10).
    pub kmeans_iterations: usize,
    /// VLAD / BoF vocabulary: k-means runs from different seeds, the lowest objective
    /// wins (`_redo<n>`; default 1).
    pub kmeans_restarts: usize,
    /// EM iterations for FV (`_em<n>`; default 20).
    pub em_iterations: usize,
}

impl EncoderSpec {
    /// The defaults for `kind` with `k` words / components.
    pub fn new(kind: EncoderKind, k: usize) -> Self {
        EncoderSpec {
            kind,
            k,
            root_sift: true,
            power: Some(0.5),
            intra: true,
            adapt: false,
            soft_alpha: None,
            residual_norm: false,
            local_rotations: false,
            descriptor_pca: kind == EncoderKind::Fisher,
            idf: true,
            sqrt_tf: true,
            max_train_descriptors: DEFAULT_MAX_TRAIN_DESCRIPTORS,
            kmeans_iterations: if kind == EncoderKind::Bof { 10 } else { 20 },
            kmeans_restarts: 1,
            em_iterations: 20,
        }
    }

    /// Output dimension for descriptors of dimension `dim_in`.
    pub fn dim_out(&self, dim_in: usize) -> usize {
        match self.kind {
            EncoderKind::Vlad => self.k * dim_in,
            EncoderKind::Fisher => 2 * self.k * dim_in,
            EncoderKind::Bof => self.k,
        }
    }

    fn kmeans_params(&self, seed: u64) -> KMeansParams {
        KMeansParams {
            iterations: self.kmeans_iterations,
            seed,
            max_points_per_centroid: usize::MAX,
            init: KMeansInit::RandomPoints,
            ..KMeansParams::default()
        }
    }

    /// Trains the encoder on `sets`: k-means (or k-means + EM) on at most
    /// `max_train_descriptors` descriptors sampled uniformly (seeded), best of
    /// `kmeans_restarts` runs for VLAD and BoF; then, for VLAD with `adapt`, vocabulary
    /// adaptation on all of `sets`, with `local_rotations`, the per-word rotations from the
    /// same sample; for BoF with `idf`, idf weights from all images of `sets`.
    pub fn train(&self, sets: &DescriptorSets<'_>, seed: u64) -> Result<Box<dyn SetEncoder>> {
        let dim = sets.dim();
        if sets.total_descriptors() < self.k {
            return Err(CodecError::NotEnoughPoints {
                what: format!("training {self}"),
                needed: self.k,
                got: sets.total_descriptors(),
            });
        }
        let sample = sample_descriptors(sets, self.max_train_descriptors, seed);
        let kmeans = self.kmeans_params(seed);
        let vocab = VocabParams {
            kmeans: kmeans.clone(),
            restarts: self.kmeans_restarts,
        };
        Ok(match self.kind {
            EncoderKind::Vlad => {
                let params = VladParams {
                    root_sift: self.root_sift,
                    power: self.power,
                    intra: self.intra,
                    soft_alpha: self.soft_alpha,
                    residual_norm: self.residual_norm,
                };
                let mut enc = VladEncoder::train(sample, dim, self.k, params, &vocab)?;
                if self.adapt {
                    enc.adapt(sets)?;
                }
                if self.local_rotations {
                    // The same sample as the vocabulary's (same seed).
                    let sample = sample_descriptors(sets, self.max_train_descriptors, seed);
                    enc.fit_local_rotations(&sample)?;
                }
                Box::new(enc)
            }
            EncoderKind::Fisher => {
                let params = FisherParams {
                    root_sift: self.root_sift,
                    power: self.power,
                    pca: self.descriptor_pca,
                };
                let gmm = GmmParams {
                    iterations: self.em_iterations,
                    kmeans,
                    ..GmmParams::default()
                };
                Box::new(FisherEncoder::train(sample, dim, self.k, params, &gmm)?)
            }
            EncoderKind::Bof => {
                let params = BofParams {
                    root_sift: self.root_sift,
                    sqrt_tf: self.sqrt_tf,
                };
                let mut enc = BofEncoder::train(sample, dim, self.k, params, &vocab)?;
                if self.idf {
                    enc.fit_idf(sets)?;
                }
                Box::new(enc)
            }
        })
    }
}

impl fmt::Display for EncoderSpec {
    /// The canonical token: defaults are omitted, so it parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = EncoderSpec::new(self.kind, self.k);
        write!(f, "{}{}", self.kind.prefix(), self.k)?;
        if self.kind != EncoderKind::Bof && self.power != d.power {
            match self.power {
                None => write!(f, "_nopow")?,
                Some(a) => write!(f, "_pow{a}")?,
            }
        }
        if self.kind == EncoderKind::Vlad && !self.intra {
            write!(f, "_nointra")?;
        }
        if !self.root_sift {
            write!(f, "_noroot")?;
        }
        if self.adapt {
            write!(f, "_adapt")?;
        }
        if let Some(a) = self.soft_alpha {
            write!(f, "_soft{a}")?;
        }
        if self.residual_norm {
            write!(f, "_rn")?;
        }
        if self.local_rotations {
            write!(f, "_lcs")?;
        }
        if self.kind == EncoderKind::Fisher && !self.descriptor_pca {
            write!(f, "_nopca")?;
        }
        if self.kind == EncoderKind::Bof && !self.idf {
            write!(f, "_noidf")?;
        }
        if self.kind == EncoderKind::Bof && !self.sqrt_tf {
            write!(f, "_nosqrt")?;
        }
        if self.kmeans_iterations != d.kmeans_iterations {
            write!(f, "_it{}", self.kmeans_iterations)?;
        }
        if self.kmeans_restarts != d.kmeans_restarts {
            write!(f, "_redo{}", self.kmeans_restarts)?;
        }
        if self.kind == EncoderKind::Fisher && self.em_iterations != d.em_iterations {
            write!(f, "_em{}", self.em_iterations)?;
        }
        if self.max_train_descriptors != d.max_train_descriptors {
            write!(f, "_sample{}", self.max_train_descriptors)?;
        }
        Ok(())
    }
}

/// Largest accepted vocabulary / mixture size.
const MAX_K: usize = 1 << 20;

/// Parses an encoder token. `Ok(None)` when the token does not start with `VLAD`, `FV` or
/// `BOF` (it is some other spec stage); an error when it does but is malformed.
pub fn parse_encoder(token: &str) -> Result<Option<EncoderSpec>> {
    let kinds = [EncoderKind::Vlad, EncoderKind::Fisher, EncoderKind::Bof];
    let Some((kind, rest)) = kinds
        .iter()
        .find_map(|&k| token.strip_prefix(k.prefix()).map(|r| (k, r)))
    else {
        return Ok(None);
    };
    let err = |reason: String| CodecError::Spec {
        spec: crate::spec::clip(token),
        reason,
    };
    let mut parts = rest.split('_');
    let head = parts.next().unwrap_or("");
    let digits_end = head
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(head.len());
    let (digits, suffix) = head.split_at(digits_end);
    let k: usize = digits.parse().map_err(|_| {
        err(format!(
            "expected the number of words after {}, e.g. {}64",
            kind.prefix(),
            kind.prefix()
        ))
    })?;
    if k == 0 || k > MAX_K {
        return Err(err(format!(
            "the number of words must be in 1..={MAX_K}, got {k}"
        )));
    }
    let mut spec = EncoderSpec::new(kind, k);
    let mut seen: Vec<&'static str> = Vec::new();
    let mut once = |family: &'static str| -> Result<()> {
        if seen.contains(&family) {
            return Err(err(format!("the {family} option is given twice")));
        }
        seen.push(family);
        Ok(())
    };
    match suffix {
        "" => {}
        "i" if kind == EncoderKind::Vlad => once("intra")?,
        other => {
            return Err(err(format!(
                "unexpected {other:?} after the number of words"
            )));
        }
    }
    for flag in parts {
        let applies = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(err(format!(
                    "option _{flag} does not apply to {}",
                    kind.prefix()
                )))
            }
        };
        let not_bof = kind != EncoderKind::Bof;
        let vlad = kind == EncoderKind::Vlad;
        let bof = kind == EncoderKind::Bof;
        if flag == "nopow" {
            applies(not_bof)?;
            once("power")?;
            spec.power = None;
        } else if let Some(v) = flag.strip_prefix("pow") {
            applies(not_bof)?;
            once("power")?;
            spec.power =
                Some(positive_f32(v).ok_or_else(|| err(format!("bad exponent in _{flag}")))?);
        } else if flag == "nointra" {
            applies(vlad)?;
            once("intra")?;
            spec.intra = false;
        } else if flag == "noroot" {
            once("root")?;
            spec.root_sift = false;
        } else if flag == "adapt" {
            applies(vlad)?;
            once("adapt")?;
            spec.adapt = true;
        } else if let Some(v) = flag.strip_prefix("soft") {
            applies(vlad)?;
            once("soft")?;
            spec.soft_alpha =
                Some(positive_f32(v).ok_or_else(|| err(format!("bad alpha in _{flag}")))?);
        } else if flag == "rn" {
            applies(vlad)?;
            once("rn")?;
            spec.residual_norm = true;
        } else if flag == "lcs" {
            applies(vlad)?;
            once("lcs")?;
            spec.local_rotations = true;
        } else if flag == "nopca" {
            applies(kind == EncoderKind::Fisher)?;
            once("pca")?;
            spec.descriptor_pca = false;
        } else if flag == "noidf" {
            applies(bof)?;
            once("idf")?;
            spec.idf = false;
        } else if flag == "nosqrt" {
            applies(bof)?;
            once("sqrt")?;
            spec.sqrt_tf = false;
        } else if let Some(v) = flag.strip_prefix("it") {
            once("it")?;
            spec.kmeans_iterations =
                positive_usize(v).ok_or_else(|| err(format!("bad count in _{flag}")))?;
        } else if let Some(v) = flag.strip_prefix("redo") {
            applies(kind != EncoderKind::Fisher)?;
            once("redo")?;
            spec.kmeans_restarts =
                positive_usize(v).ok_or_else(|| err(format!("bad count in _{flag}")))?;
        } else if let Some(v) = flag.strip_prefix("em") {
            applies(kind == EncoderKind::Fisher)?;
            once("em")?;
            spec.em_iterations =
                positive_usize(v).ok_or_else(|| err(format!("bad count in _{flag}")))?;
        } else if let Some(v) = flag.strip_prefix("sample") {
            once("sample")?;
            spec.max_train_descriptors =
                positive_usize(v).ok_or_else(|| err(format!("bad count in _{flag}")))?;
        } else {
            return Err(err(format!(
                "unknown option _{flag} (see docs/encoders.md)"
            )));
        }
    }
    Ok(Some(spec))
}

fn positive_f32(s: &str) -> Option<f32> {
    s.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0)
}

fn positive_usize(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<usize>().ok().filter(|&v| v > 0)
}
