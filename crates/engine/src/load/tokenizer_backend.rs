//! What does the tokenizing behind [`crate::load::tokenizer::Tokenizer`]: a `tokenizer.json`
//! through the HuggingFace `tokenizers` crate, or Qwen v1's tiktoken tokenizer
//! ([`QwenTiktoken`]), which has no tokenizer.json.

use std::sync::Arc;

use tokenizers::Tokenizer as HfTokenizer;

use crate::error::{Error, ErrorCode, Result};
use crate::load::qwen_tokenizer::QwenTiktoken;

#[derive(Clone)]
pub enum Backend {
    Hf(Box<HfTokenizer>),
    /// Shared: cloning a tokenizer (another padding side) keeps one vocabulary.
    Qwen(Arc<QwenTiktoken>),
}

pub(crate) fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Tokenizer, e.to_string())
}

/// Runs a call into `tokenizers`, turning a panic (what some malformed tokenizer files cause
/// deep inside it) into a `TL_TOKENIZER` error instead of unwinding into the caller.
pub(crate) fn unpanicked<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        Error::new(ErrorCode::Tokenizer, format!("the tokenizer failed to {what} (its tokenizer.json is malformed): {msg}"))
    })
}

impl Backend {
    /// The `tokenizers` tokenizer, for what only tokenizer.json tokenizers have (post-processor,
    /// pair encoding, saving as JSON).
    pub fn hf(&self) -> Option<&HfTokenizer> {
        match self {
            Backend::Hf(t) => Some(t),
            Backend::Qwen(_) => None,
        }
    }

    pub fn hf_mut(&mut self) -> Option<&mut HfTokenizer> {
        match self {
            Backend::Hf(t) => Some(t),
            Backend::Qwen(_) => None,
        }
    }

    pub fn qwen(&self) -> Option<&QwenTiktoken> {
        match self {
            Backend::Qwen(q) => Some(q),
            Backend::Hf(_) => None,
        }
    }

    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        match self {
            Backend::Hf(t) => {
                let enc = unpanicked("encode", || t.encode(text, add_special))?.map_err(tok_err)?;
                Ok(enc.get_ids().to_vec())
            }
            // QWenTokenizer adds no special tokens of its own.
            Backend::Qwen(q) => q.encode(text),
        }
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        match self {
            Backend::Hf(t) => unpanicked("decode", || t.decode(ids, skip_special))?.map_err(tok_err),
            Backend::Qwen(q) => q.decode(ids, skip_special),
        }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Backend::Hf(t) => t.token_to_id(token),
            Backend::Qwen(q) => q.token_to_id(token),
        }
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Backend::Hf(t) => unpanicked("look up a token", || t.id_to_token(id)).ok().flatten(),
            Backend::Qwen(q) => q.id_to_token(id),
        }
    }

    /// transformers' `tokenizer.vocab_size` (QWenTokenizer's: tiktoken's n_vocab).
    pub fn base_vocab_size(&self) -> usize {
        match self {
            Backend::Hf(t) => t.get_vocab_size(false),
            Backend::Qwen(q) => q.n_vocab(),
        }
    }

    /// `len(tokenizer)`.
    pub fn vocab_size(&self) -> usize {
        match self {
            Backend::Hf(t) => t.get_vocab_size(true),
            Backend::Qwen(q) => q.n_vocab(),
        }
    }

    /// `max(tokenizer.vocab.values()) + 1`, what TL's set_tokenizer takes for an unset d_vocab
    /// (QWenTokenizer's vocab holds the ranks only).
    pub fn vocab_max_id_plus_1(&self) -> usize {
        match self {
            Backend::Hf(t) => t.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1),
            Backend::Qwen(q) => q.ranks_len(),
        }
    }
}
