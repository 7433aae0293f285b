//! The model file (`model-NNNNNN.vdbm`): the trained parameters of the index, written once
//! at training time and memory-mapped at open.
//!
//! It is a segment container (see `docs/format.md`) with a small rkyv-archived `meta`
//! section (format version, spec, dimensions) and plain f32 sections for the bulk arrays:
//! `pca_mean`, `pca_matrix`, `pca_eigen`, `coarse` (list centroids), `pq` (codebooks) and
//! `tables` (the IVF-PQ precomputed terms). The precomputed tables are served straight
//! from the mapping, so opening costs neither their computation nor their memory.

use std::sync::Arc;

use rkyv::rancor;
use rkyv::util::AlignedVec;
use vladdb_codecs::encode::SetEncoder;
use vladdb_codecs::index::{IndexModel, Quantizer, StoredModel};
use vladdb_codecs::ivf::{CoarseQuantizer, SharedFloats};
use vladdb_codecs::pca::Pca;
use vladdb_codecs::pq::ProductQuantizer;
use vladdb_codecs::spec::IndexSpec;

use crate::error::{Error, Result};
use crate::storage::{SectionSpec, Segment, Storage, write_segment};

/// Version of the model file's meta record.
const MODEL_VERSION: u32 = 1;

/// The small structured part of the model file.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
struct ModelMeta {
    version: u32,
    spec: String,
    dim: u64,
    pca_d_out: u64,
    pca_total_variance: f32,
    nlist: u64,
    pq_m: u64,
    pq_nbits: u32,
    tables_lut_len: u64,
    /// The encoder's canonical token (`VLAD64`, ...), empty when vectors are stored as given.
    encoder: String,
    /// Dimension of the local descriptors the encoder takes.
    encoder_dim_in: u64,
}

/// A loaded model: the index model and, for descriptor-set databases, the encoder.
pub type Loaded = (IndexModel, Option<Arc<dyn SetEncoder>>);

/// Writes `model` as the new immutable file `name`, durably.
pub fn save(
    storage: &dyn Storage,
    name: &str,
    model: &IndexModel,
    encoder: Option<&dyn SetEncoder>,
) -> Result<()> {
    let (encoder_token, encoder_arrays) = match encoder {
        Some(e) => super::encoder_store::encoder_sections(e)?,
        None => (String::new(), Vec::new()),
    };
    let parts = model.stored_parts();
    let pca = parts.pca;
    let meta = ModelMeta {
        version: MODEL_VERSION,
        spec: model.spec().to_string(),
        dim: model.dim() as u64,
        pca_d_out: pca.map_or(0, |p| p.d_out() as u64),
        pca_total_variance: pca.map_or(0.0, |p| p.total_variance()),
        nlist: parts.coarse.map_or(0, |c| c.nlist() as u64),
        pq_m: match parts.quantizer {
            Quantizer::Pq(pq) => pq.m as u64,
            _ => 0,
        },
        pq_nbits: match parts.quantizer {
            Quantizer::Pq(pq) => pq.nbits,
            _ => 0,
        },
        tables_lut_len: parts.tables.map_or(0, |t| t.1 as u64),
        encoder: encoder_token,
        encoder_dim_in: encoder.map_or(0, |e| e.dim_in() as u64),
    };
    let meta_bytes = rkyv::to_bytes::<rancor::Error>(&meta)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise the model: {e}")))?;
    let mut sections: Vec<(SectionSpec, &[u8])> = vec![(
        SectionSpec::of::<u8>("meta", meta_bytes.len() as u64),
        &meta_bytes,
    )];
    let f32s = |name: &str, data: &[f32]| -> (SectionSpec, Vec<u8>) {
        (
            SectionSpec::of::<f32>(name, data.len() as u64),
            floats_to_bytes(data),
        )
    };
    let mut owned: Vec<(SectionSpec, Vec<u8>)> = Vec::new();
    if let Some(p) = pca {
        owned.push(f32s("pca_mean", p.mean()));
        owned.push(f32s("pca_matrix", p.matrix()));
        owned.push(f32s("pca_eigen", p.eigenvalues()));
    }
    if let Some(c) = parts.coarse {
        owned.push(f32s("coarse", &c.kmeans.centroids));
    }
    if let Quantizer::Pq(pq) = parts.quantizer {
        owned.push(f32s("pq", &pq.centroids));
    }
    if let Some((t, _)) = parts.tables {
        owned.push(f32s("tables", t));
    }
    for (section, data) in encoder_arrays {
        owned.push(f32s(section, data));
    }
    sections.extend(owned.iter().map(|(s, b)| (s.clone(), b.as_slice())));
    write_segment(storage, name, 0, &sections)?;
    Ok(())
}

fn floats_to_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A section of a mapped model file viewed as floats (keeps the mapping alive).
struct MappedFloats {
    segment: Segment,
    name: &'static str,
}

impl AsRef<[f32]> for MappedFloats {
    fn as_ref(&self) -> &[f32] {
        self.segment.typed::<f32>(self.name).unwrap_or_default()
    }
}

/// Loads and validates model file `name`; `verify` also checks every section crc.
pub fn load(storage: &dyn Storage, name: &str, verify: bool) -> Result<Loaded> {
    let segment = Segment::open(storage, name, verify)?;
    let path = segment.path().to_path_buf();
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        reason,
    };
    let raw = segment.typed::<u8>("meta")?;
    let mut aligned = AlignedVec::<16>::with_capacity(raw.len());
    aligned.extend_from_slice(raw);
    let meta: ModelMeta = rkyv::from_bytes::<ModelMeta, rancor::Error>(&aligned)
        .map_err(|e| corrupt(format!("bad model metadata: {e}")))?;
    if meta.version != MODEL_VERSION {
        return Err(Error::Storage(
            crate::storage::StorageError::UnsupportedVersion {
                path: path.clone(),
                found: meta.version,
                supported: MODEL_VERSION,
            },
        ));
    }
    let spec = IndexSpec::parse(&meta.spec).map_err(|e| corrupt(e.to_string()))?;
    let dim = usize::try_from(meta.dim).map_err(|_| corrupt("dimension overflows".into()))?;
    let floats = |n: &str| -> Result<Vec<f32>> { Ok(segment.typed::<f32>(n)?.to_vec()) };
    let pca = if meta.pca_d_out > 0 {
        let p = Pca::from_parts(
            floats("pca_mean")?,
            floats("pca_matrix")?,
            floats("pca_eigen")?,
            dim,
            meta.pca_d_out as usize,
        )
        .and_then(|p| p.with_total_variance(meta.pca_total_variance))
        .map_err(|e| corrupt(format!("bad PCA: {e}")))?;
        Some(p)
    } else {
        None
    };
    let inner = spec.inner_dim(dim);
    let coarse = if meta.nlist > 0 {
        Some(
            CoarseQuantizer::from_centroids(floats("coarse")?, inner)
                .map_err(|e| corrupt(format!("bad coarse centroids: {e}")))?,
        )
    } else {
        None
    };
    let quantizer = if meta.pq_m > 0 {
        Quantizer::Pq(
            ProductQuantizer::from_centroids(
                inner,
                meta.pq_m as usize,
                meta.pq_nbits,
                floats("pq")?,
            )
            .map_err(|e| corrupt(format!("bad PQ codebooks: {e}")))?,
        )
    } else {
        Quantizer::Flat
    };
    let tables: Option<(SharedFloats, usize)> = if meta.tables_lut_len > 0 {
        let shared: SharedFloats = Arc::new(MappedFloats {
            segment: segment.clone(),
            name: "tables",
        });
        Some((shared, meta.tables_lut_len as usize))
    } else {
        None
    };
    let model = IndexModel::from_stored(StoredModel {
        spec,
        dim,
        pca,
        coarse,
        quantizer,
        tables,
    })
    .map_err(|e| corrupt(format!("inconsistent model: {e}")))?;
    let encoder = if meta.encoder.is_empty() {
        None
    } else {
        let dim_in = usize::try_from(meta.encoder_dim_in)
            .map_err(|_| corrupt("encoder dimension overflows".into()))?;
        let has = |n: &str| segment.section(n).is_some();
        let enc = super::encoder_store::load_encoder(&meta.encoder, dim_in, &|n| floats(n), &has)
            .map_err(|e| corrupt(format!("bad encoder: {e}")))?;
        if enc.dim_out() != dim {
            return Err(corrupt(format!(
                "the encoder makes {}-D vectors, the index takes {dim}",
                enc.dim_out()
            )));
        }
        Some(enc)
    };
    Ok((model, encoder))
}
