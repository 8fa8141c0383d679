//! Holds Brook's cross-crate integration tests and examples.
