pub mod hub;
pub mod safetensors;
pub mod tokenizer;
pub mod tokenizer_check;
pub mod model;
pub mod spec;
#[cfg(unix)]
pub mod read_at;
