//! A model's tokenizer with TL's BOS and padding rules: `tokenizer.json` through the HuggingFace
//! `tokenizers` crate, or Qwen v1's tiktoken tokenizer (`qwen.tiktoken`, no tokenizer.json).

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer as HfTokenizer;

use crate::error::{Error, ErrorCode, Result};
use crate::load::hub::ModelFiles;
use crate::load::qwen_tokenizer::{self, QwenTiktoken};
use crate::load::tokenizer_backend::{tok_err, unpanicked, Backend};
use crate::load::tokenizer_bos::adds_bos_when_asked;
pub use crate::load::tokenizer_bos::tl_loads_slow;
use crate::model::config::Config;

/// Cloning copies a tokenizer.json vocabulary (a model shares its tokenizer through an `Arc`
/// instead).
#[derive(Clone)]
pub struct Tokenizer {
    inner: Backend,
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

/// Reads a tokenizer JSON file, refusing what would make `tokenizers` panic or allocate without
/// bound (`tokenizer_check`), and drops its padding and truncation settings: transformers
/// overrides them on every call TL makes (`padding=True`, `truncation`, `max_length`), and
/// `to_tokens` pads and truncates as TL does. BERT-style classes take their normalizer settings
/// from tokenizer_config.json (`config`) as transformers does (`tokenizer_bert_norm`).
fn read_checked(path: &Path, config: Option<&serde_json::Value>, model_config: Option<&serde_json::Value>) -> Result<HfTokenizer> {
    let files = ModelFiles { dir: path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tokenizer.json");
    let mut json = files.read_json(name)?;
    crate::load::tokenizer_bert_norm::apply(&mut json, config, model_config);
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
        let inner = Backend::Hf(Box::new(read_checked(tokenizer_json, config, model_config)?));
        let mut tok = Tokenizer::with_specials(inner, config, specials);
        if let Some(bos) = tok.bos_token.clone().filter(|_| adds_bos_when_asked(config, model_config, slow)) {
            tok.add_bos(&bos, config)?;
        }
        tok.prepends_bos = !tok.encode_one("", true).map_err(|e| Error::corrupt(format!("{}: {}", tokenizer_json.display(), e.message)))?.is_empty();
        Ok(tok)
    }

    /// Qwen v1's tiktoken tokenizer (`QWenTokenizer`) from its `qwen.tiktoken`, with the special
    /// tokens of tokenizer_config.json / special_tokens_map.json when they name any (the real
    /// repos name none, so TL's fallbacks make `<|endoftext|>` eos, pad and bos). It adds nothing
    /// to a text, whatever `add_bos_token` says.
    pub fn load_qwen(vocab: &Path, config: Option<&serde_json::Value>, specials: Option<&serde_json::Value>) -> Result<Self> {
        let errors = qwen_tokenizer::Utf8Errors::from_config(config)?;
        let inner = Backend::Qwen(Arc::new(QwenTiktoken::read(vocab, errors)?));
        Ok(Tokenizer::with_specials(inner, config, specials))
    }

    fn with_specials(inner: Backend, config: Option<&serde_json::Value>, specials: Option<&serde_json::Value>) -> Self {
        let pick = |k: &str| special(config, k).or_else(|| special(specials, k));
        let eos_token = pick("eos_token").or_else(|| Some("<|endoftext|>".to_string()));
        let pad_token = pick("pad_token").or_else(|| eos_token.clone());
        let bos_token = pick("bos_token").or_else(|| eos_token.clone());
        let id = |t: &Option<String>| t.as_ref().and_then(|s| inner.token_to_id(s));
        Tokenizer {
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
        }
    }

    /// A folder holding `tokenizer.json`, or the path of a tokenizer JSON file; the
    /// `tokenizer_config.json` and `special_tokens_map.json` beside it are read when present.
    /// A folder with Qwen v1's `qwen.tiktoken` and no tokenizer.json, whose tokenizer_config.json
    /// (or config.json) names `QWenTokenizer`, or the path of a `.tiktoken` file, gives Qwen v1's
    /// tokenizer.
    pub fn from_path(path: &Path) -> Result<Self> {
        Tokenizer::from_path_as(path, false)
    }

    /// Writes the tokenizer's files (`tokenizer.json` with the BOS handling it has now, or Qwen
    /// v1's `qwen.tiktoken`) and a `tokenizer_config.json` naming its special tokens (and class,
    /// for Qwen v1), which [`Tokenizer::from_path_as`] reads back as it was.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::new(ErrorCode::Io, format!("cannot write the tokenizer to {}: {e}", dir.display()));
        let mut cfg = serde_json::Map::new();
        match &self.inner {
            Backend::Hf(t) => std::fs::write(dir.join("tokenizer.json"), t.to_string(true).map_err(tok_err)?).map_err(io)?,
            Backend::Qwen(q) => {
                std::fs::write(dir.join(qwen_tokenizer::VOCAB_FILE), q.vocab_file()).map_err(io)?;
                cfg.insert("tokenizer_class".into(), qwen_tokenizer::CLASS.into());
            }
        }
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

    /// Whether `dir` holds a tokenizer [`Tokenizer::from_path`] reads: tokenizer.json, or Qwen
    /// v1's qwen.tiktoken named by its config.
    pub fn in_folder(dir: &Path) -> bool {
        let files = ModelFiles { dir: dir.to_path_buf() };
        files.has("tokenizer.json") || (files.has(qwen_tokenizer::VOCAB_FILE) && Tokenizer::qwen_named(&files))
    }

    /// As AutoTokenizer finds the class: tokenizer_config.json's, else (when it names none)
    /// config.json's.
    fn qwen_named(files: &ModelFiles) -> bool {
        let read = |name: &str| if files.has(name) { files.read_json(name).ok() } else { None };
        let tc = read("tokenizer_config.json");
        if qwen_tokenizer::names_qwen_class(tc.as_ref()) {
            return true;
        }
        let names_one = tc.as_ref().is_some_and(|c| c.get("tokenizer_class").is_some_and(|v| !v.is_null()));
        !names_one && qwen_tokenizer::names_qwen_class(read("config.json").as_ref())
    }

    /// [`Tokenizer::from_path`] as transformers' slow class of the tokenizer when `slow` (TL's
    /// `use_fast=False`, see [`tl_loads_slow`]).
    pub fn from_path_as(path: &Path, slow: bool) -> Result<Self> {
        let (file, dir) = if path.is_dir() {
            (path.join("tokenizer.json"), path.to_path_buf())
        } else {
            (path.to_path_buf(), path.parent().map(Path::to_path_buf).unwrap_or_default())
        };
        let files = ModelFiles { dir };
        let optional = |name: &str| if files.has(name) { files.read_json(name).map(Some) } else { Ok(None) };
        let qwen_vocab = if path.is_dir() {
            Some(files.path(qwen_tokenizer::VOCAB_FILE)).filter(|v| !file.is_file() && v.is_file() && Tokenizer::qwen_named(&files))
        } else {
            Some(file.clone()).filter(|f| f.is_file() && f.extension().is_some_and(|e| e == "tiktoken"))
        };
        if let Some(vocab) = qwen_vocab {
            return Tokenizer::load_qwen(&vocab, optional("tokenizer_config.json")?.as_ref(), optional("special_tokens_map.json")?.as_ref());
        }
        if !file.is_file() {
            let what = if path.is_dir() { format!("there is no tokenizer.json in {}", path.display()) } else { format!("{} does not exist", path.display()) };
            return Err(Error::new(ErrorCode::MissingFile, what));
        }
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
        let hf = self.inner.hf_mut().ok_or_else(|| Error::new(ErrorCode::Internal, "only a tokenizer.json tokenizer takes a BOS post-processor"))?;
        hf.with_post_processor(Some(template));
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
            cfg.d_vocab = self.inner.vocab_max_id_plus_1();
        }
        if cfg.d_vocab_out == -1 {
            cfg.d_vocab_out = cfg.d_vocab as i64;
        }
    }

    pub fn encode_one(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.inner.encode(text, add_special)
    }

    /// transformers' `tokenizer(text, truncation=True, max_length=m)`: the text's tokens cut to
    /// leave room for the special tokens the post-processor adds (T5's `</s>` survives).
    pub fn encode_truncated(&self, text: &str, max_len: Option<usize>) -> Result<Vec<u32>> {
        Ok(self.encode_typed(text, None, max_len)?.0)
    }

    /// transformers' `tokenizer(a, b, truncation=True, max_length=max_len)` for one text or a
    /// pair, as TL's encoder classes call it: ids with the special tokens, and token type ids
    /// (the post-processor's: 1 on the second segment). Truncation is transformers'
    /// `longest_first`, leaving room for the special tokens. tokenizer.json tokenizers only.
    pub fn encode_typed(&self, a: &str, b: Option<&str>, max_len: Option<usize>) -> Result<(Vec<u32>, Vec<u32>)> {
        use tokenizers::tokenizer::PostProcessor;
        use tokenizers::utils::truncation::{truncate_encodings, TruncationParams};
        let inner = self.inner.hf().ok_or_else(|| Error::unsupported("Qwen v1's tiktoken tokenizer does not encode text pairs or token types (TL's encoder models use tokenizer.json tokenizers)"))?;
        let enc = |s: &str| -> Result<tokenizers::Encoding> { unpanicked("encode", || inner.encode(s, false))?.map_err(tok_err) };
        let (first, second) = (enc(a)?, b.map(enc).transpose()?);
        let (first, second) = match max_len {
            Some(m) => {
                let added = inner.get_post_processor().map_or(0, |p| p.added_tokens(second.is_some()));
                let params = TruncationParams { max_length: m.saturating_sub(added), ..Default::default() };
                truncate_encodings(first, second, &params).map_err(tok_err)?
            }
            None => (first, second),
        };
        let out = unpanicked("encode", || inner.post_process(first, second, true))?.map_err(tok_err)?;
        Ok((out.get_ids().to_vec(), out.get_type_ids().to_vec()))
    }

    /// One text's ids as TL's `to_tokens` has the tokenizer make them: with BOS added when
    /// `prepend_bos` and the tokenizer does not add it itself (TL writes `bos_token + text` and
    /// tokenizes that; Qwen v1's tokenizer so too, since its NFC can join the two, while a
    /// tokenizer.json tokenizer splits its special tokens off first, so the id goes in front),
    /// or the tokenizer's own BOS removed when not `prepend_bos`.
    fn to_token_ids(&self, text: &str, prepend_bos: bool) -> Result<Vec<u32>> {
        if prepend_bos && !self.prepends_bos && self.inner.qwen().is_some() {
            let bos = self.bos_token.as_deref().ok_or_else(|| tok_err("the tokenizer has no BOS token to prepend"))?;
            return self.encode_one(&format!("{bos}{text}"), true);
        }
        let mut ids = self.encode_one(text, true)?;
        if prepend_bos && !self.prepends_bos {
            let bos = self.bos_token_id.ok_or_else(|| tok_err("the tokenizer has no BOS token to prepend"))?;
            ids.insert(0, bos);
        } else if !prepend_bos && self.prepends_bos && !ids.is_empty() && Some(ids[0]) == self.bos_token_id {
            ids.remove(0);
        }
        Ok(ids)
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
            let mut ids = self.to_token_ids(t, prepend_bos)?;
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
        self.inner.decode(ids, skip_special)
    }

    /// One string per token, as TL's `to_str_tokens`.
    pub fn id_to_piece(&self, id: u32) -> Result<String> {
        self.decode(&[id], false)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary entry of `id` (`Ġthe`, not its decoded text), as transformers'
    /// `convert_ids_to_tokens` (Qwen v1's byte tokens in the same byte-level characters); None
    /// for an id the vocabulary lacks.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// transformers' `tokenizer.vocab_size`: the model's vocabulary without added tokens
    /// (QWenTokenizer's counts its special tokens).
    pub fn base_vocab_size(&self) -> usize {
        self.inner.base_vocab_size()
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
}
