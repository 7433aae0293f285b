//! Shared helpers for the criterion benches (synthetic data generators).
