//! Local-descriptor encoders: turn each image's set of local descriptors (SIFT, a few
//! hundred 128-D vectors) into one global vector — VLAD, Fisher vectors, bag of features.
//!
//! Pieces:
//! - [`DescriptorSets`] (in `sets`): the validated descriptors + offsets view, RootSIFT;
//! - [`SetEncoder`]: the trait every trained encoder implements, and [`encode_sets`], the
//!   multi-threaded batch driver (rayon across groups of images);
//! - [`VladEncoder`], [`FisherEncoder`] (with its [`DiagGmm`]), [`BofEncoder`]: the
//!   trained states, plain public fields so the engine can serialise them;
//! - [`train_vocabulary`] (in `vocab`): k-means vocabularies, best of several restarts;
//! - [`parse_encoder`] / [`EncoderSpec`]: the encoder token at the front of an index spec
//!   (`VLAD64`, `FV64`, `BOF1024`, ...) and its training entry point.
//!
//! The grammar of encoder tokens is documented in `docs/encoders.md`.

mod assign;
mod bof;
mod fisher;
mod gmm;
mod lcs;
mod norm;
mod sets;
mod simd;
mod spec;
mod stream;
mod vlad;
mod vocab;

use std::any::Any;
use std::fmt::Debug;

use rayon::prelude::*;

use crate::error::{CodecError, Result};
use crate::vectors::ElemType;

pub use bof::{BofEncoder, BofParams};
pub use fisher::{FisherEncoder, FisherParams};
pub use gmm::{DiagGmm, GmmParams};
pub use sets::{DescriptorSets, root_sift_in_place, root_sift_rows};
pub use spec::{DEFAULT_MAX_TRAIN_DESCRIPTORS, EncoderKind, EncoderSpec, parse_encoder};
pub use vlad::{SOFT_MIN_WEIGHT, VladEncoder, VladParams};
pub use vocab::{VocabParams, restart_seed, train_vocabulary};

/// A trained encoder from a set of `dim_in`-dimensional local descriptors to one
/// `dim_out`-dimensional global vector.
///
/// Callers pass raw descriptors (e.g. SIFT components as `f32`); the encoder applies its
/// own preprocessing (RootSIFT when configured) first. An empty set encodes to all zeros.
pub trait SetEncoder: Send + Sync + Debug {
    /// The canonical spec token of this encoder's configuration (e.g. `VLAD64`).
    fn spec_token(&self) -> String;
    /// Dimension of the local descriptors.
    fn dim_in(&self) -> usize;
    /// Dimension of the encoded global vector.
    fn dim_out(&self) -> usize;
    /// Applies the per-descriptor preprocessing (RootSIFT or nothing) in place to
    /// contiguous rows of `dim_in`.
    fn preprocess(&self, descriptors: &mut [f32]);
    /// Encodes a batch of images whose *preprocessed* descriptors are concatenated in
    /// `descriptors`; image `i` owns rows `bounds[i]..bounds[i + 1]`, and its code goes to
    /// `out[i * dim_out..(i + 1) * dim_out]`. Inputs are already validated.
    fn encode_prepared(&self, descriptors: &[f32], bounds: &[usize], out: &mut [f32])
    -> Result<()>;
    /// The concrete encoder, for downcasting (e.g. to serialise its state).
    fn as_any(&self) -> &dyn Any;

    /// Encodes one image: `set` holds `n × dim_in` raw descriptors, `out` has `dim_out`
    /// entries.
    fn encode(&self, set: &[f32], out: &mut [f32]) -> Result<()> {
        let dim = self.dim_in();
        check_rows(set, dim)?;
        if out.len() != self.dim_out() {
            return Err(CodecError::DimensionMismatch {
                expected: self.dim_out(),
                got: out.len(),
            });
        }
        let mut prepared = set.to_vec();
        self.preprocess(&mut prepared);
        self.encode_prepared(&prepared, &[0, set.len() / dim], out)
    }
}

/// Number of rows of a contiguous matrix, checking shape and finiteness.
pub(crate) fn check_rows(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: data.len(),
        });
    }
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        return Err(CodecError::NonFinite { row: pos / dim });
    }
    Ok(data.len() / dim)
}

/// Checks a batch handed to [`SetEncoder::encode_prepared`]: `descriptors` holds whole
/// rows of `dim`, `bounds` starts at 0, never decreases and ends at the row count, and
/// `out` holds one code of `dim_out` per image. Returns the number of images.
pub(crate) fn check_batch(
    descriptors: &[f32],
    bounds: &[usize],
    dim: usize,
    out: &[f32],
    dim_out: usize,
) -> Result<usize> {
    if dim == 0 || !descriptors.len().is_multiple_of(dim) {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: descriptors.len(),
        });
    }
    let rows = descriptors.len() / dim;
    let ok = bounds.first() == Some(&0)
        && bounds.last() == Some(&rows)
        && bounds.windows(2).all(|w| w[0] <= w[1]);
    if !ok {
        return Err(CodecError::InvalidParameter(format!(
            "image bounds must rise from 0 to the {rows} descriptors of the batch"
        )));
    }
    let images = bounds.len() - 1;
    if out.len() != images * dim_out {
        return Err(CodecError::DimensionMismatch {
            expected: images * dim_out,
            got: out.len(),
        });
    }
    Ok(images)
}

/// Images are encoded in groups of about this many descriptors: large enough for the
/// blocked assignment kernels, small enough to spread across threads.
const GROUP_DESCRIPTORS: usize = 2048;

/// Splits images `0..n` into consecutive groups of about [`GROUP_DESCRIPTORS`].
pub(crate) fn image_groups(sets: &DescriptorSets<'_>) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut count = 0usize;
    for i in 0..sets.len() {
        count += sets.count(i);
        if count >= GROUP_DESCRIPTORS || i + 1 - start >= GROUP_DESCRIPTORS {
            groups.push(start..i + 1);
            start = i + 1;
            count = 0;
        }
    }
    if start < sets.len() {
        groups.push(start..sets.len());
    }
    groups
}

/// Encodes every image of `sets`, in parallel across groups of images on the current
/// rayon pool. Returns the codes (`sets.len() × dim_out`, row-major) and the indices of
/// the images without descriptors (their codes are all zeros).
pub fn encode_sets(
    encoder: &dyn SetEncoder,
    sets: &DescriptorSets<'_>,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let mut codes = vec![0.0f32; sets.len() * encoder.dim_out()];
    let empty = encode_sets_into(encoder, sets, &mut codes)?;
    Ok((codes, empty))
}

/// The rows of `codes` (`sets.len()` rows of `dim`, as [`encode_sets`] returns them) that
/// belong to images with descriptors, in order: what an index stores and trains on (an
/// empty image's all-zero code would sit at the same distance from every query).
pub fn non_empty_codes(codes: &[f32], dim: usize, sets: &DescriptorSets<'_>) -> Result<Vec<f32>> {
    if codes.len() != sets.len() * dim {
        return Err(CodecError::DimensionMismatch {
            expected: sets.len() * dim,
            got: codes.len(),
        });
    }
    let mut rows = Vec::with_capacity(codes.len());
    for (i, code) in codes.chunks_exact(dim.max(1)).enumerate() {
        if sets.count(i) > 0 {
            rows.extend_from_slice(code);
        }
    }
    Ok(rows)
}

/// [`encode_sets`] into a caller-provided buffer of `sets.len() × dim_out` floats (so a
/// batch pipeline can reuse it); returns the indices of the empty images.
pub fn encode_sets_into(
    encoder: &dyn SetEncoder,
    sets: &DescriptorSets<'_>,
    codes: &mut [f32],
) -> Result<Vec<usize>> {
    let dim = encoder.dim_in();
    if sets.dim() != dim {
        return Err(CodecError::DimensionMismatch {
            expected: dim,
            got: sets.dim(),
        });
    }
    let dim_out = encoder.dim_out();
    if codes.len() != sets.len() * dim_out {
        return Err(CodecError::DimensionMismatch {
            expected: sets.len() * dim_out,
            got: codes.len(),
        });
    }
    let floats = sets.descriptors().elem() == ElemType::F32;
    let groups = image_groups(sets);
    let mut jobs = Vec::with_capacity(groups.len());
    let mut rest: &mut [f32] = codes;
    for g in groups {
        let (head, tail) = rest.split_at_mut(g.len() * dim_out);
        jobs.push((g, head));
        rest = tail;
    }
    jobs.into_par_iter().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(buf, bounds), (g, out)| {
            sets.images_f32_into(g.start, g.end, buf);
            let base = sets.offsets()[g.start];
            if floats && !all_finite(buf) {
                let pos = buf.iter().position(|v| !v.is_finite()).unwrap_or(0);
                return Err(CodecError::NonFinite {
                    row: base as usize + pos / dim,
                });
            }
            encoder.preprocess(buf);
            bounds.clear();
            bounds.extend(
                sets.offsets()[g.start..=g.end]
                    .iter()
                    .map(|&o| (o - base) as usize),
            );
            encoder.encode_prepared(buf, bounds, out)
        },
    )?;
    Ok((0..sets.len()).filter(|&i| sets.count(i) == 0).collect())
}

/// True when no component is NaN or infinite (`x · 0` is NaN exactly for those), written
/// without early exit so that it vectorises.
fn all_finite(v: &[f32]) -> bool {
    let mut acc = [0.0f32; 8];
    let whole = v.len() / 8 * 8;
    for c in v[..whole].chunks_exact(8) {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * 0.0;
        }
    }
    acc.iter().chain(&v[whole..]).all(|x| (x * 0.0) == 0.0)
}

/// Up to `max` descriptors drawn uniformly without replacement from all images, as
/// contiguous `f32` rows (not preprocessed). Deterministic for a given seed.
pub fn sample_descriptors(sets: &DescriptorSets<'_>, max: usize, seed: u64) -> Vec<f32> {
    let n = sets.total_descriptors();
    let dim = sets.dim();
    let v = sets.descriptors();
    if max >= n {
        return v.to_f32_vec(0, n);
    }
    let mut rng = crate::kmeans::SeededRng::new(seed);
    let mut rows = rng.sample_indices(n, max);
    rows.sort_unstable();
    let mut out = vec![0.0f32; rows.len() * dim];
    for (o, &r) in out.chunks_exact_mut(dim).zip(&rows) {
        v.row_f32_into(r, o);
    }
    out
}

#[cfg(test)]
mod tests;
