//! `NativeTokenizer`: a tokenizer loaded on its own, or taken from a model, to install on a
//! model with `NativeModel.setTokenizer` (TL's `set_tokenizer`).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::load::tokenizer::Tokenizer;

use crate::errors::{guard, IntoNapi};

#[napi]
pub struct NativeTokenizer {
    pub(crate) inner: Arc<Tokenizer>,
}

pub struct LoadTokenizerTask {
    path: String,
}

impl Task for LoadTokenizerTask {
    type Output = Tokenizer;
    type JsValue = NativeTokenizer;

    fn compute(&mut self) -> Result<Tokenizer> {
        guard(|| Tokenizer::from_path(std::path::Path::new(&self.path)).napi())
    }

    fn resolve(&mut self, _env: Env, tok: Tokenizer) -> Result<NativeTokenizer> {
        Ok(NativeTokenizer { inner: Arc::new(tok) })
    }
}

/// A folder holding tokenizer.json (with tokenizer_config.json / special_tokens_map.json when
/// present), or the path of a tokenizer JSON file; or Qwen v1's tiktoken tokenizer: a folder with
/// qwen.tiktoken whose tokenizer_config.json names QWenTokenizer, or a `.tiktoken` file.
#[napi(ts_return_type = "Promise<NativeTokenizer>")]
pub fn load_tokenizer(path: String) -> AsyncTask<LoadTokenizerTask> {
    AsyncTask::new(LoadTokenizerTask { path })
}

#[napi]
impl NativeTokenizer {
    /// transformers' `convert_ids_to_tokens`: each id's vocabulary entry (`Ġthe`), null for an
    /// id the vocabulary lacks.
    #[napi]
    pub fn ids_to_tokens(&self, ids: Vec<u32>) -> Vec<Option<String>> {
        ids.into_iter().map(|id| self.inner.id_to_token(id)).collect()
    }

    /// transformers' `tokenizer.vocab_size` (without added tokens).
    #[napi]
    pub fn base_vocab_size(&self) -> u32 {
        self.inner.base_vocab_size() as u32
    }
}
