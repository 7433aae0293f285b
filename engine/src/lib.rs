//! vladdb: an embedded vector database engine for image retrieval.
pub use vladdb_codecs as codecs;

pub mod db;
pub mod error;
pub mod sets;
pub mod storage;
pub mod vecfile;

pub use db::{Database, Hit, Options, Stats};
pub use error::{Error, Result};
pub use vecfile::{IntMatrix, VectorFile};
