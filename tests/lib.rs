//! Shared helpers for vladdb's workspace-level integration tests.
