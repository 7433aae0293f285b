//! vladdb: an embedded vector database engine for image retrieval.
pub use vladdb_codecs as codecs;
