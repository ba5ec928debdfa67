pub mod hub;
pub mod safetensors;
pub mod tokenizer;
pub mod model;
#[cfg(unix)]
pub mod read_at;
