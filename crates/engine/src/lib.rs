//! transformer-lens engine: a TransformerLens-compatible hooked transformer on candle.
//! No napi here: the Node addon (root crate) is a thin binding over this crate.

pub mod bert;
pub mod device;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod lens;
pub mod families;
pub mod load;
pub mod model;
pub mod process;
pub mod t5;
pub mod tensor;
pub mod train;

pub use candle_core;
pub use error::{Error, ErrorCode, Result};
