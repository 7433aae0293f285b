//! vladdb-codecs: the math of vladdb, with no file or network I/O.
//!
//! Everything here works on in-memory slices: distance kernels with run-time SIMD
//! dispatch, exact (brute-force) k-NN, top-k selection, k-means, PCA, product
//! quantization, the IVF coarse quantizer with ADC scanning, index spec strings, and
//! (later) the local-descriptor encoders (VLAD, Fisher, BoF). The `vladdb` engine crate
//! adds storage on top and re-exports what users need.

pub mod adc;
pub mod distance;
pub mod encode;
pub mod error;
pub mod exact;
pub mod fastscan;
pub mod half;
pub mod index;
pub mod ivf;
pub mod kmeans;
pub mod linalg;
pub mod pca;
pub mod pq;
pub mod spec;
pub mod topk;
pub mod vectors;

pub use error::{CodecError, Result};
pub use topk::{Neighbor, TopK};
pub use vectors::{ElemType, VectorsRef};
