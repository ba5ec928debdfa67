pub mod config;
pub mod hub;
pub mod safetensors;
pub mod tokenizer;
pub mod tokenizer_check;
pub mod torch_bin;
pub mod torch_legacy;
pub mod torch_weights;
pub mod torch_write;
pub mod zip;
pub mod zip_write;
pub mod model;
pub mod tl_dir;
pub mod tl_native;
pub mod pickle;
mod pickle_vm;
pub mod spec;
#[cfg(unix)]
pub mod read_at;
