//! T5 (`T5ForConditionalGeneration`) as TL's `HookedEncoderDecoder`: config, weight
//! conversion, the encoder-decoder forward with TL's hook points, and generation through a
//! decoder KV cache. The decoder follows HuggingFace where TL 2.16.1 is wrong (its decoder
//! self-attention has no causal mask and uses bidirectional position buckets).

pub mod attention;
pub mod block;
pub mod buckets;
pub mod config;
pub mod generate;
pub mod hooks;
pub mod load;
pub mod model;
pub mod weights;

#[cfg(test)]
mod tests;
