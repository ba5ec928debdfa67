//! Qwen v1's tokenizer: `QWenTokenizer`, the remote code (tokenization_qwen.py) of the Qwen/Qwen-*
//! repos, over their `qwen.tiktoken` (no tokenizer.json). What it does, done the same way here:
//!
//! - ids: the file's ranks, then the special tokens `<|endoftext|>`, `<|im_start|>`,
//!   `<|im_end|>`, `<|extra_0|>` .. `<|extra_204|>` (the real file numbers them from 151643, the
//!   number of ranks in the real qwen.tiktoken; here from the number of ranks read);
//! - encoding: NFC, then tiktoken's `encode` with every special token allowed in the text: the
//!   text is cut at each special token, each stretch between split by Qwen's `PAT_STR` (fancy
//!   regex, as tiktoken) and each piece byte-pair encoded ([`TiktokenBpe`]);
//! - decoding: the tokens' bytes (special tokens' text included) as UTF-8 with the class's
//!   `errors` (tokenizer_config.json's, "replace" by default: each invalid sequence one U+FFFD,
//!   as Python; "ignore" drops them, "strict" refuses them); `skip_special_tokens` keeps only the
//!   ids below `<|endoftext|>`'s; an id outside the vocabulary is an error (tiktoken's KeyError);
//! - vocabulary entries (`convert_ids_to_tokens`): a regular token is bytes in Python, shown here
//!   in GPT-2's byte-level characters (`Ġ` for a space), as tokenizer.json vocabularies show them.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, ErrorCode, Result};
use crate::load::tiktoken::TiktokenBpe;

/// The vocabulary file the remote code reads (its `VOCAB_FILES_NAMES`).
pub const VOCAB_FILE: &str = "qwen.tiktoken";
pub const CLASS: &str = "QWenTokenizer";
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// tokenization_qwen.py's `PAT_STR`.
const PAT_STR: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const N_EXTRA: usize = 205;

/// Python's `bytes.decode(errors=...)` handlers for invalid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Errors {
    Replace,
    Ignore,
    Strict,
}

impl Utf8Errors {
    /// tokenizer_config.json's `errors` (absent: "replace", the class's default).
    pub fn from_config(config: Option<&serde_json::Value>) -> Result<Self> {
        match config.and_then(|c| c.get("errors")) {
            None | Some(serde_json::Value::Null) => Ok(Utf8Errors::Replace),
            Some(v) => match v.as_str() {
                Some("replace") => Ok(Utf8Errors::Replace),
                Some("ignore") => Ok(Utf8Errors::Ignore),
                Some("strict") => Ok(Utf8Errors::Strict),
                _ => Err(Error::unsupported(format!("tokenizer_config.json's errors = {v}: only \"replace\", \"ignore\" and \"strict\" are supported"))),
            },
        }
    }

    fn decode(self, bytes: &[u8]) -> Result<String> {
        let mut out = String::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            if chunk.invalid().is_empty() {
                continue;
            }
            match self {
                Utf8Errors::Replace => out.push('\u{fffd}'),
                Utf8Errors::Ignore => {}
                Utf8Errors::Strict => {
                    let bad = chunk.invalid().escape_ascii();
                    return Err(Error::new(ErrorCode::Tokenizer, format!("the tokens' bytes are not UTF-8 (b\"{bad}\") and errors is \"strict\"")));
                }
            }
        }
        Ok(out)
    }
}

pub struct QwenTiktoken {
    bpe: TiktokenBpe,
    pattern: fancy_regex::Regex,
    /// By id - the number of ranks.
    specials: Vec<String>,
    special_ids: HashMap<String, u32>,
    longest_special: usize,
    byte_chars: [char; 256],
    errors: Utf8Errors,
}

/// Whether `tokenizer_config.json` (or config.json) names Qwen v1's class, as AutoTokenizer
/// finds it: `tokenizer_class`, or an `auto_map` AutoTokenizer entry `tokenization_qwen.QWenTokenizer`.
pub fn names_qwen_class(config: Option<&serde_json::Value>) -> bool {
    let Some(c) = config else { return false };
    if c.get("tokenizer_class").and_then(|v| v.as_str()) == Some(CLASS) {
        return true;
    }
    let auto = c.get("auto_map").and_then(|m| m.get("AutoTokenizer"));
    let first = match auto {
        Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_str()),
        Some(v) => v.as_str(),
        None => None,
    };
    first.is_some_and(|s| s.rsplit('.').next() == Some(CLASS))
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the others for
/// U+0100 onwards in byte order.
fn byte_level_chars() -> [char; 256] {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        out[b as usize] = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\u{fffd}')
        };
    }
    out
}

impl QwenTiktoken {
    pub fn read(vocab: &Path, errors: Utf8Errors) -> Result<Self> {
        Ok(QwenTiktoken { errors, ..Self::new(TiktokenBpe::read(vocab)?)? })
    }

    pub fn new(bpe: TiktokenBpe) -> Result<Self> {
        let pattern = fancy_regex::Regex::new(PAT_STR).map_err(|e| Error::new(ErrorCode::Internal, format!("Qwen's split pattern: {e}")))?;
        let mut specials = vec![ENDOFTEXT.to_string(), "<|im_start|>".into(), "<|im_end|>".into()];
        specials.extend((0..N_EXTRA).map(|i| format!("<|extra_{i}|>")));
        let start = bpe.len() as u32;
        let special_ids = specials.iter().enumerate().map(|(i, s)| (s.clone(), start + i as u32)).collect();
        let longest_special = specials.iter().map(String::len).max().unwrap_or(0);
        Ok(QwenTiktoken { bpe, pattern, specials, special_ids, longest_special, byte_chars: byte_level_chars(), errors: Utf8Errors::Replace })
    }

    /// `<|endoftext|>`'s id (the remote code's `eod_id`): the first after the ranks.
    pub fn eod_id(&self) -> u32 {
        self.bpe.len() as u32
    }

    /// tiktoken's `n_vocab` (the remote code's `vocab_size` and `len()`): ranks + special tokens.
    pub fn n_vocab(&self) -> usize {
        self.bpe.len() + self.specials.len()
    }

    /// `max(get_vocab().values()) + 1`: the remote code's `get_vocab()` holds the ranks only.
    pub fn ranks_len(&self) -> usize {
        self.bpe.len()
    }

    /// The vocabulary file's content (for saving).
    pub fn vocab_file(&self) -> String {
        self.bpe.to_file()
    }

    /// The next special token in `text`: (byte offset, byte length, id). Every special token is
    /// `<|name|>` with no `|>` inside, so only the first `|>` after a `<|` can close one.
    fn next_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let bytes = text.as_bytes();
        let mut from = 0;
        while let Some(i) = text[from..].find("<|") {
            let at = from + i;
            let window = &bytes[at..bytes.len().min(at + self.longest_special)];
            if let Some(j) = window[2..].windows(2).position(|w| w == b"|>") {
                let end = at + 2 + j + 2;
                if let Some(&id) = text.get(at..end).and_then(|s| self.special_ids.get(s)) {
                    return Some((at, end - at, id));
                }
            }
            from = at + 1;
        }
        None
    }

    /// `tokenizer(text).input_ids` (the class adds no special tokens of its own).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let normalized;
        let text = if text.is_ascii() {
            text
        } else {
            let mut n = tokenizers::NormalizedString::from(text);
            n.nfc();
            normalized = n.get().to_string();
            normalized.as_str()
        };
        let mut out = Vec::with_capacity(text.len() / 3);
        let mut rest = text;
        loop {
            let special = self.next_special(rest);
            let stretch = &rest[..special.map_or(rest.len(), |(at, _, _)| at)];
            for piece in self.pattern.find_iter(stretch) {
                let piece = piece.map_err(|e| Error::new(ErrorCode::Tokenizer, format!("cannot split the text into Qwen's pieces: {e}")))?;
                self.bpe.encode_piece(piece.as_str().as_bytes(), &mut out);
            }
            match special {
                Some((at, len, id)) => {
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => return Ok(out),
            }
        }
    }

    fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.bpe.token(id).or_else(|| self.specials.get(id.checked_sub(self.eod_id())? as usize).map(|s| s.as_bytes()))
    }

    /// The remote code's `decode(ids, skip_special_tokens)`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && id >= self.eod_id() {
                continue;
            }
            let t = self.token_bytes(id).ok_or_else(|| {
                Error::new(ErrorCode::Tokenizer, format!("token id {id} is not in Qwen's vocabulary (ids 0..{}): it cannot be decoded", self.n_vocab()))
            })?;
            bytes.extend_from_slice(t);
        }
        self.errors.decode(&bytes)
    }

    /// `convert_ids_to_tokens` for one id: a special token's text, a regular token's bytes in
    /// byte-level characters; None outside the vocabulary.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self.bpe.token(id) {
            Some(t) => Some(t.iter().map(|&b| self.byte_chars[b as usize]).collect()),
            None => self.specials.get(id.checked_sub(self.eod_id())? as usize).cloned(),
        }
    }

    /// The id of a special token's text, or of a regular token in byte-level characters (what
    /// [`QwenTiktoken::id_to_token`] gives).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(&id) = self.special_ids.get(token) {
            return Some(id);
        }
        let bytes: Option<Vec<u8>> = token.chars().map(|c| self.byte_chars.iter().position(|&x| x == c).map(|b| b as u8)).collect();
        self.bpe.rank(&bytes?)
    }
}

#[cfg(test)]
#[path = "qwen_tokenizer_tests.rs"]
mod tests;
