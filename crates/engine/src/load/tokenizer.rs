//! `tokenizer.json` through the HuggingFace `tokenizers` crate, with TL's BOS and padding rules.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer as HfTokenizer;

use crate::error::{Error, ErrorCode, Result};
use crate::load::hub::ModelFiles;
use crate::model::config::Config;

/// Cloning copies the vocabulary (a model shares its tokenizer through an `Arc` instead).
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    /// `len(tokenizer.encode("")) > 0`: the tokenizer adds BOS by itself.
    pub prepends_bos: bool,
    pub padding_side_left: bool,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Tokenizer, e.to_string())
}

/// transformers' fast tokenizer classes that honour `add_bos_token` (by rebuilding their
/// post-processor), which TL passes as True when it loads a model's tokenizer; and the
/// config.json `model_type`s whose default tokenizer is one of them.
const ADD_BOS_CLASSES: &[&str] = &["GPTNeoXTokenizer", "LlamaTokenizer", "CodeLlamaTokenizer", "GemmaTokenizer", "CohereTokenizer"];
const ADD_BOS_MODEL_TYPES: &[&str] = &["gpt_neox", "llama", "gemma", "gemma2", "gemma3", "cohere", "phi3"];
/// The slow (Python) classes that honour `add_bos_token` while their fast twins do not, and the
/// `model_type`s whose default tokenizer is one of them. TL loads the tokenizer of a model
/// whose name contains "phi" slow (`use_fast=False`), so that phi's CodeGen tokenizer adds BOS.
const SLOW_ADD_BOS_CLASSES: &[&str] = &["GPT2Tokenizer", "CodeGenTokenizer"];
const SLOW_ADD_BOS_MODEL_TYPES: &[&str] = &["gpt2", "gpt_neo", "gptj", "opt", "codegen", "phi"];

/// TL's choice of tokenizer class for the model it loads: slow when `"phi"` is in its
/// tokenizer name (the official name, or the folder path of a local model).
pub fn tl_loads_slow(tokenizer_name: &str) -> bool {
    tokenizer_name.to_lowercase().contains("phi")
}

fn adds_bos_when_asked(config: Option<&serde_json::Value>, model_config: Option<&serde_json::Value>, slow: bool) -> bool {
    match config.and_then(|c| c.get("tokenizer_class")).and_then(|v| v.as_str()) {
        Some(class) => {
            let class = class.strip_suffix("Fast").unwrap_or(class);
            ADD_BOS_CLASSES.contains(&class) || (slow && SLOW_ADD_BOS_CLASSES.contains(&class))
        }
        None => model_config.and_then(|c| c.get("model_type")).and_then(|v| v.as_str()).is_some_and(|t| {
            ADD_BOS_MODEL_TYPES.contains(&t) || (slow && SLOW_ADD_BOS_MODEL_TYPES.contains(&t))
        }),
    }
}

/// Runs a call into `tokenizers`, turning a panic (what some malformed tokenizer files cause
/// deep inside it) into a `TL_TOKENIZER` error instead of unwinding into the caller.
fn unpanicked<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
        Error::new(ErrorCode::Tokenizer, format!("the tokenizer failed to {what} (its tokenizer.json is malformed): {msg}"))
    })
}

/// Reads a tokenizer JSON file, refusing what would make `tokenizers` panic or allocate without
/// bound (`tokenizer_check`), and drops its padding and truncation settings: transformers
/// overrides them on every call TL makes (`padding=True`, `truncation`, `max_length`), and
/// `to_tokens` pads and truncates as TL does.
fn read_checked(path: &Path) -> Result<HfTokenizer> {
    let files = ModelFiles { dir: path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tokenizer.json");
    let json = files.read_json(name)?;
    crate::load::tokenizer_check::check(&json).map_err(|why| Error::corrupt(format!("{}: {why}", path.display())))?;
    let corrupt = |e: &dyn std::fmt::Display| Error::corrupt(format!("cannot read {}: {e}", path.display()));
    let mut inner = unpanicked("load", || serde_json::from_value::<HfTokenizer>(json))
        .map_err(|e| corrupt(&e))?
        .map_err(|e| corrupt(&e))?;
    inner.with_padding(None);
    inner.with_truncation(None).map_err(|e| corrupt(&e))?;
    Ok(inner)
}

fn special(cfg: Option<&serde_json::Value>, key: &str) -> Option<String> {
    let v = cfg?.get(key)?;
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

impl Tokenizer {
    /// Reads `tokenizer.json`; special tokens come from `tokenizer_config.json` (or
    /// `special_tokens_map.json`) when present. As TL: eos defaults to `<|endoftext|>`, pad and
    /// bos default to eos.
    /// `model_config` is the model's config.json, when beside the tokenizer (it names the
    /// tokenizer class when tokenizer_config.json does not, as for transformers' AutoTokenizer).
    /// `slow`: behave as transformers' slow class of the tokenizer ([`tl_loads_slow`]).
    pub fn load(
        tokenizer_json: &Path,
        config: Option<&serde_json::Value>,
        specials: Option<&serde_json::Value>,
        model_config: Option<&serde_json::Value>,
        slow: bool,
    ) -> Result<Self> {
        let inner = read_checked(tokenizer_json)?;
        let pick = |k: &str| special(config, k).or_else(|| special(specials, k));
        let eos_token = pick("eos_token").or_else(|| Some("<|endoftext|>".to_string()));
        let pad_token = pick("pad_token").or_else(|| eos_token.clone());
        let bos_token = pick("bos_token").or_else(|| eos_token.clone());
        let id = |t: &Option<String>| t.as_ref().and_then(|s| inner.token_to_id(s));
        let mut tok = Tokenizer {
            bos_token_id: id(&bos_token),
            eos_token_id: id(&eos_token),
            pad_token_id: id(&pad_token),
            bos_token,
            eos_token,
            pad_token,
            prepends_bos: false,
            // TL pads on the right unless told otherwise (`default_padding_side`), whatever
            // tokenizer_config.json says; callers set the side with `with_padding_side`.
            padding_side_left: false,
            inner,
        };
        if let Some(bos) = tok.bos_token.clone().filter(|_| adds_bos_when_asked(config, model_config, slow)) {
            tok.add_bos(&bos, config)?;
        }
        tok.prepends_bos = !tok.encode_one("", true).map_err(|e| Error::corrupt(format!("{}: {}", tokenizer_json.display(), e.message)))?.is_empty();
        Ok(tok)
    }

    /// A folder holding `tokenizer.json`, or the path of a tokenizer JSON file; the
    /// `tokenizer_config.json` and `special_tokens_map.json` beside it are read when present.
    pub fn from_path(path: &Path) -> Result<Self> {
        Tokenizer::from_path_as(path, false)
    }

    /// [`Tokenizer::from_path`] as transformers' slow class of the tokenizer when `slow` (TL's
    /// `use_fast=False`, see [`tl_loads_slow`]).
    /// Writes `tokenizer.json` (with the BOS handling it has now) and a `tokenizer_config.json`
    /// naming its special tokens, which [`Tokenizer::from_path_as`] reads back as it was.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = self.inner.to_string(true).map_err(tok_err)?;
        let io = |e: std::io::Error| Error::new(ErrorCode::Io, format!("cannot write the tokenizer to {}: {e}", dir.display()));
        std::fs::write(dir.join("tokenizer.json"), json).map_err(io)?;
        let mut cfg = serde_json::Map::new();
        for (k, v) in [("bos_token", &self.bos_token), ("eos_token", &self.eos_token), ("pad_token", &self.pad_token)] {
            if let Some(v) = v {
                cfg.insert(k.into(), serde_json::Value::String(v.clone()));
            }
        }
        let text = serde_json::Value::Object(cfg).to_string();
        std::fs::write(dir.join("tokenizer_config.json"), &text).map_err(io)?;
        std::fs::write(dir.join("special_tokens_map.json"), &text).map_err(io)?;
        Ok(())
    }

    pub fn from_path_as(path: &Path, slow: bool) -> Result<Self> {
        let (file, dir) = if path.is_dir() {
            (path.join("tokenizer.json"), path.to_path_buf())
        } else {
            (path.to_path_buf(), path.parent().map(Path::to_path_buf).unwrap_or_default())
        };
        if !file.is_file() {
            let what = if path.is_dir() { format!("there is no tokenizer.json in {}", path.display()) } else { format!("{} does not exist", path.display()) };
            return Err(Error::new(ErrorCode::MissingFile, what));
        }
        let files = ModelFiles { dir };
        let optional = |name: &str| if files.has(name) { files.read_json(name).map(Some) } else { Ok(None) };
        let (cfg, specials) = (optional("tokenizer_config.json")?, optional("special_tokens_map.json")?);
        let model_config = optional("config.json").ok().flatten();
        Tokenizer::load(&file, cfg.as_ref(), specials.as_ref(), model_config.as_ref(), slow)
    }

    /// What transformers' `update_post_processor` does for `add_bos_token=True` (TL loads every
    /// tokenizer so): BOS before each sequence, EOS after it when tokenizer_config.json sets
    /// `add_eos_token`.
    fn add_bos(&mut self, bos: &str, config: Option<&serde_json::Value>) -> Result<()> {
        let bos_id = self.inner.token_to_id(bos).ok_or_else(|| Error::corrupt(format!("the BOS token {bos:?} is not in the vocabulary")))?;
        let mut single = format!("{bos}:0 $A:0");
        let mut specials = vec![(bos.to_string(), bos_id)];
        let add_eos = config.and_then(|c| c.get("add_eos_token")).and_then(|v| v.as_bool()).unwrap_or(false);
        if let (true, Some(eos)) = (add_eos, self.eos_token.clone()) {
            let eos_id = self.inner.token_to_id(&eos).ok_or_else(|| Error::corrupt(format!("the EOS token {eos:?} is not in the vocabulary")))?;
            single.push_str(&format!(" {eos}:0"));
            if eos != bos {
                specials.push((eos, eos_id));
            }
        }
        let pair = format!("{single} $B:1");
        let template = TemplateProcessing::builder()
            .try_single(single.as_str())
            .and_then(|b| b.try_pair(pair.as_str()))
            .map_err(|e| Error::corrupt(format!("cannot add the BOS token {bos:?}: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| Error::corrupt(format!("cannot add the BOS token {bos:?}: {e}")))?;
        self.inner.with_post_processor(Some(template));
        Ok(())
    }

    /// This tokenizer padding on the given side (TL's `default_padding_side`).
    pub fn with_padding_side(&self, left: bool) -> Tokenizer {
        Tokenizer { padding_side_left: left, ..self.clone() }
    }

    /// What TL's `set_tokenizer` writes into the config: `tokenizer_prepends_bos`, and the vocab
    /// sizes when unset (`d_vocab` 0 here, TL's -1: the largest token id + 1).
    pub fn apply_to_config(&self, cfg: &mut Config) {
        cfg.tokenizer_prepends_bos = Some(self.prepends_bos);
        if cfg.d_vocab == 0 {
            cfg.d_vocab = self.inner.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1);
        }
        if cfg.d_vocab_out == -1 {
            cfg.d_vocab_out = cfg.d_vocab as i64;
        }
    }

    pub fn encode_one(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = unpanicked("encode", || self.inner.encode(text, add_special))?.map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// transformers' `tokenizer(text, truncation=True, max_length=m)`: the text's tokens cut to
    /// leave room for the special tokens the post-processor adds (T5's `</s>` survives).
    pub fn encode_truncated(&self, text: &str, max_len: Option<usize>) -> Result<Vec<u32>> {
        Ok(self.encode_typed(text, None, max_len)?.0)
    }

    /// transformers' `tokenizer(a, b, truncation=True, max_length=max_len)` for one text or a
    /// pair, as TL's encoder classes call it: ids with the special tokens, and token type ids
    /// (the post-processor's: 1 on the second segment). Truncation is transformers'
    /// `longest_first`, leaving room for the special tokens.
    pub fn encode_typed(&self, a: &str, b: Option<&str>, max_len: Option<usize>) -> Result<(Vec<u32>, Vec<u32>)> {
        use tokenizers::tokenizer::PostProcessor;
        use tokenizers::utils::truncation::{truncate_encodings, TruncationParams};
        let enc = |s: &str| -> Result<tokenizers::Encoding> { unpanicked("encode", || self.inner.encode(s, false))?.map_err(tok_err) };
        let (first, second) = (enc(a)?, b.map(enc).transpose()?);
        let (first, second) = match max_len {
            Some(m) => {
                let added = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(second.is_some()));
                let params = TruncationParams { max_length: m.saturating_sub(added), ..Default::default() };
                truncate_encodings(first, second, &params).map_err(tok_err)?
            }
            None => (first, second),
        };
        let out = unpanicked("encode", || self.inner.post_process(first, second, true))?.map_err(tok_err)?;
        Ok((out.get_ids().to_vec(), out.get_type_ids().to_vec()))
    }

    /// TL's `to_tokens`: `[batch, pos]` int64, padded to the longest row.
    pub fn to_tokens(
        &self,
        texts: &[String],
        prepend_bos: bool,
        padding_left: bool,
        max_len: Option<usize>,
        device: &Device,
    ) -> Result<Tensor> {
        let mut rows = Vec::with_capacity(texts.len());
        for t in texts {
            let mut ids = self.encode_one(t, true)?;
            if prepend_bos && !self.prepends_bos {
                let bos = self.bos_token_id.ok_or_else(|| tok_err("the tokenizer has no BOS token to prepend"))?;
                ids.insert(0, bos);
            } else if !prepend_bos && self.prepends_bos && !ids.is_empty() && Some(ids[0]) == self.bos_token_id {
                ids.remove(0);
            }
            if let Some(m) = max_len {
                ids.truncate(m);
            }
            rows.push(ids);
        }
        let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if width == 0 {
            return Err(Error::invalid("the input tokenizes to zero tokens"));
        }
        let pad = self.pad_token_id.unwrap_or(0) as i64;
        let mut flat = Vec::with_capacity(rows.len() * width);
        for r in &rows {
            let fill = width - r.len();
            if padding_left {
                flat.extend(std::iter::repeat_n(pad, fill));
            }
            flat.extend(r.iter().map(|&x| x as i64));
            if !padding_left {
                flat.extend(std::iter::repeat_n(pad, fill));
            }
        }
        Ok(Tensor::from_vec(flat, (rows.len(), width), device)?)
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        unpanicked("decode", || self.inner.decode(ids, skip_special))?.map_err(tok_err)
    }

    /// One string per token, as TL's `to_str_tokens`.
    pub fn id_to_piece(&self, id: u32) -> Result<String> {
        self.decode(&[id], false)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary entry of `id` (`Ġthe`, not its decoded text), as transformers'
    /// `convert_ids_to_tokens`; None for an id the vocabulary lacks.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        unpanicked("look up a token", || self.inner.id_to_token(id)).ok().flatten()
    }

    /// transformers' `tokenizer.vocab_size`: the model's vocabulary without added tokens.
    pub fn base_vocab_size(&self) -> usize {
        self.inner.get_vocab_size(false)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slow_gpt2_style_classes_add_bos_only_when_tl_loads_them_slow() {
        assert!(tl_loads_slow("microsoft/phi-2") && tl_loads_slow("microsoft/Phi-3-mini-4k-instruct"));
        assert!(!tl_loads_slow("gpt2") && !tl_loads_slow("Qwen/Qwen3-0.6B"));
        let class = |c: &str| json!({ "tokenizer_class": c });
        for c in ["CodeGenTokenizer", "GPT2Tokenizer", "GPT2TokenizerFast"] {
            assert!(adds_bos_when_asked(Some(&class(c)), None, true), "{c} slow");
            assert!(!adds_bos_when_asked(Some(&class(c)), None, false), "{c} fast");
        }
        // Llama's fast class rebuilds its post-processor too; Qwen2's classes never add BOS.
        assert!(adds_bos_when_asked(Some(&class("LlamaTokenizer")), None, false));
        assert!(!adds_bos_when_asked(Some(&class("Qwen2Tokenizer")), None, true));
        // Without a tokenizer_class, config.json's model_type picks the class, as for AutoTokenizer.
        let phi = json!({ "model_type": "phi" });
        assert!(adds_bos_when_asked(None, Some(&phi), true) && !adds_bos_when_asked(None, Some(&phi), false));
        assert!(adds_bos_when_asked(None, Some(&json!({ "model_type": "phi3" })), false));
    }
}
