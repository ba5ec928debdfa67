//! Training: models from a config (TL's init schemes), torch's optimisers, and the step of
//! TL's `train` loop with gradients reaching every weight.

pub mod init;
pub mod optim;
pub mod trainer;
