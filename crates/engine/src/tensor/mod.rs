//! Tensor helpers that candle lacks: TL-style indexing, functional slice assignment, linear algebra,
//! seeded random tensors.
pub mod index;
pub mod linalg;
pub mod ops;
pub mod random;
