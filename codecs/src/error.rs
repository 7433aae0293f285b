//! The typed error returned by every fallible function in `vladdb-codecs`.

use thiserror::Error;

/// Result alias used across the codecs crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// What can go wrong in the math layer. Messages are one line, meant for end users.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CodecError {
    /// A parameter is out of its valid range (e.g. `k = 0`, `M` not dividing the dimension).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A vector or matrix has the wrong dimension.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
    /// Training needs more points than were given (e.g. fewer points than centroids).
    #[error("not enough training points: {what} needs at least {needed}, got {got}")]
    NotEnoughPoints {
        what: String,
        needed: usize,
        got: usize,
    },
    /// A vector holds NaN or an infinite component.
    #[error("vector {row} has a non-finite component (NaN or infinity)")]
    NonFinite { row: usize },
    /// An index spec string could not be parsed.
    #[error("bad index spec {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    /// An operation needs a trained model.
    #[error("the index is not trained")]
    NotTrained,
    /// A numerical routine failed (e.g. an eigensolver did not converge).
    #[error("numerical failure: {0}")]
    Numerical(String),
}
