//! Tensor helpers that candle lacks: TL-style indexing, functional slice assignment, linear algebra.
pub mod index;
pub mod linalg;
pub mod ops;
