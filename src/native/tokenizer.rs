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
/// present), or the path of a tokenizer JSON file.
#[napi(ts_return_type = "Promise<NativeTokenizer>")]
pub fn load_tokenizer(path: String) -> AsyncTask<LoadTokenizerTask> {
    AsyncTask::new(LoadTokenizerTask { path })
}
