//! Tensor helpers that candle lacks: TL-style indexing and functional slice assignment.
pub mod index;
pub mod ops;
