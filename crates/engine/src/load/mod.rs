pub mod decode;
pub mod hub;
pub mod safetensors;
pub mod tokenizer;
pub mod model;
