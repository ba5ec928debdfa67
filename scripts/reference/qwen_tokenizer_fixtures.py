#!/usr/bin/env python
"""Goldens of Qwen v1's tiktoken tokenizer (`QWenTokenizer`) and of TL's use of it.

Usage:  python scripts/reference/qwen_tokenizer_fixtures.py   (after make_family_fixtures.py
        has written the Qwen/Qwen-1_8B fixture: qwen.tiktoken + tokenization_qwen.py, no
        tokenizer.json)

Writes __test__/fixtures/golden/Qwen__Qwen-1_8B/tokenizer.json:
  tokenizer   what the tokenizer TL loads gives (AutoTokenizer, trust_remote_code,
              add_bos_token=True, then TL's set_tokenizer fallbacks): special ids and tokens,
              vocab_size / len / max(get_vocab()) + 1; per prompt `tokenizer(prompt).input_ids`,
              convert_ids_to_tokens (bytes shown as GPT-2's byte-level characters, the way the
              library shows them), decode with and without skip_special_tokens, and the
              one-token decodes TL's to_str_tokens makes; ids of deterministic fuzz strings;
              decodes of id lists built from byte tokens (invalid UTF-8 -> errors="replace", and
              with the tokenizer loaded with errors="ignore" / "strict") and the id lists whose
              decode raises
  tl          HookedTransformer.from_pretrained on the fixture: cfg defaults, to_tokens of each
              prompt (default, prepend_bos=True), of a batch (default, both BOS settings on both
              padding sides), to_str_tokens, to_string, and greedy generate (str and tokens)
"""
import json
import random
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import qwen_tiktoken as qt
import torch
from transformers import AutoTokenizer
from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

QWEN_ID = "Qwen/Qwen-1_8B"

PROMPTS = [
    "The quick brown fox jumps over the lazy dog. It was a sunny day.",
    "Hello world, this is a test",
    "I'm sure it's fine: we'll see, they've gone, YOU'RE right, don't. 'S 'T 'Re 'ſ",
    "Café naïve Ångström résumé crème brûlée",
    "Cafe\u0301 and e\u0301 compose (NFC); A\u030a too",
    "杭州是个好地方。你好，世界！",
    "日本語のテキスト 한국어 Привет",
    "👋 hello 🌍 world 🚀😀 👍🏽 🇫🇷 🎉🎉",
    "😀",
    " 😀",
    "lens TransformerLens \tfoo 123",
    "Numbers: 3.14159 1,000,000 2024 -7 0x1F",
    "   leading spaces and trailing   ",
    "tabs\t\tand\nnewlines\n\n\nand\r\nCRLF\r\n",
    "def f(x):\n    return x  # comment\n\tTabbed\n",
    "<|endoftext|>special in text<|im_start|>user\nhi<|im_end|>\n<|extra_0|><|extra_204|>",
    "<|endoftext|>",
    "<|extra_205|> <|notspecial|> <|endoftext| <|im_start",
    "a<|endoftext|>  <|endoftext|>\n",
    "\u0338 a combining mark first",
    "\u00a0nbsp\u2003em\u3000ideographic zero\u200bwidth",
    "a" + " " * 20 + "b" + "\n" * 5,
    "Ǆ ǅ ǆ ß ẞ",
]
EMPTY = ""
BATCH = [PROMPTS[1], PROMPTS[5], PROMPTS[7], "Hi"]
GENERATE = [PROMPTS[0], PROMPTS[5], PROMPTS[7]]
N_FUZZ = 300
FRAGMENTS = [
    "the", " the", "e", " ", "  ", "\n", "\n\n", "\t", "'s", "'S", "'ll", "1", "23", ".", ",", "é",
    "e\u0301", "\u0301", "杭", "州", "好", "😀", "🌍", "👍🏽", "<|endoftext|>", "<|im_end|>", "<|extra_7|>",
    "<|", "|>", "ing", " and", "ll", "\r\n", "\r", "Ö", "ß", "ſ", "💡", "A", "z", "!", "?", "-", "—",
    "…", " fox", "lens", "\tfoo", "123", "  \n", "\u00a0", "Ω", "ا", "ü",
]
DECODE_BYTES = [0x41, 0x20, 0x80, 0xBF, 0xC3, 0xA9, 0xE6, 0x9D, 0xAD, 0xF0, 0x9F, 0x98, 0xED, 0xA0, 0xFF, 0xC0, 0xF4, 0x90]


def tl_fallbacks(tok):
    """TL's set_tokenizer: eos defaults to <|endoftext|>, pad and bos to eos."""
    if tok.eos_token is None:
        tok.eos_token = "<|endoftext|>"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.bos_token is None:
        tok.bos_token = tok.eos_token


BYTE_CHARS = bytes_to_unicode()


def shown(token):
    return "".join(BYTE_CHARS[b] for b in token) if isinstance(token, bytes) else token


def fuzz_strings():
    rng = random.Random(2631)
    out = []
    for _ in range(N_FUZZ):
        parts = [rng.choice(FRAGMENTS) if rng.random() < 0.8 else chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 16))]
        out.append("".join(parts))
    return out


def decode_cases(tok):
    """Id lists of byte tokens (and the odd special token) whose bytes are often invalid UTF-8."""
    rng = random.Random(2632)
    byte_id = {b: tok.convert_tokens_to_ids(bytes([b])) for b in DECODE_BYTES}
    cases = []
    for _ in range(120):
        ids = [byte_id[rng.choice(DECODE_BYTES)] for _ in range(rng.randrange(1, 7))]
        if rng.random() < 0.2:
            ids.insert(rng.randrange(len(ids) + 1), tok.eod_id + rng.randrange(3))
        cases.append(ids)
    return cases


def decode_or_error(tok, ids, **kw):
    try:
        return tok.decode(ids, **kw)
    except Exception as e:  # noqa: BLE001  (tiktoken raises KeyError for an unknown id)
        return {"error": type(e).__name__}


def errors_record():
    """decode of decode_cases with the class's errors="ignore" and "strict" (tokenizer_config.json's
    `errors`, an init argument)."""
    out = {}
    for errors in ["ignore", "strict"]:
        tok = AutoTokenizer.from_pretrained(QWEN_ID, add_bos_token=True, trust_remote_code=True, errors=errors)
        out[errors] = [decode_or_error(tok, ids) for ids in decode_cases(tok)]
    return out


def tokenizer_record(tok):
    rec = {
        "class": type(tok).__name__,
        "bos": [tok.bos_token, tok.bos_token_id], "eos": [tok.eos_token, tok.eos_token_id],
        "pad": [tok.pad_token, tok.pad_token_id],
        "vocab_size": tok.vocab_size, "len": len(tok), "max_vocab_id_plus_1": max(tok.get_vocab().values()) + 1,
        "special_ids": {t: tok.convert_tokens_to_ids(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|extra_0|>", "<|extra_204|>"]},
        "regular_str_id": tok.convert_tokens_to_ids("the"),
        "empty": tok(EMPTY).input_ids,
    }
    rec["prompts"] = []
    for p in PROMPTS:
        ids = tok(p).input_ids
        rec["prompts"].append({
            "text": p, "ids": ids,
            "tokens": [shown(t) for t in tok.convert_ids_to_tokens(ids)],
            "decode": tok.decode(ids), "decode_skip": tok.decode(ids, skip_special_tokens=True),
            "pieces": [tok.decode(i) for i in ids],
        })
    rec["fuzz"] = [{"text": s, "ids": tok(s).input_ids} for s in fuzz_strings()]
    rec["decodes"] = [{"ids": ids, "text": tok.decode(ids), "skip": tok.decode(ids, skip_special_tokens=True)} for ids in decode_cases(tok)]
    n = len(tok)
    rec["unknown"] = [{"ids": ids, "decode": decode_or_error(tok, ids), "skip": decode_or_error(tok, ids, skip_special_tokens=True)}
                      for ids in ([n], [0, n + 5], [tok.eod_id, n - 1])]
    return rec


def tl_record():
    model = mf.load_tl(QWEN_ID, "processed")
    tok = model.tokenizer
    rec = {
        "cfg": {k: getattr(model.cfg, k) for k in ["default_prepend_bos", "tokenizer_prepends_bos", "d_vocab", "d_vocab_out", "n_ctx"]},
        "padding_side": tok.padding_side,
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
        "prompts": [],
    }
    for p in PROMPTS:
        rec["prompts"].append({
            "text": p,
            "to_tokens": model.to_tokens(p).tolist(),
            "to_tokens_bos": model.to_tokens(p, prepend_bos=True).tolist(),
            "to_str_tokens": model.to_str_tokens(p),
            "to_str_tokens_bos": model.to_str_tokens(p, prepend_bos=True),
        })
    batch = {"default": model.to_tokens(BATCH).tolist()}
    for side in ["left", "right"]:
        for bos in [True, False]:
            batch[f"{side}.{'bos' if bos else 'nobos'}"] = model.to_tokens(BATCH, prepend_bos=bos, padding_side=side).tolist()
    rec["batch"] = {"texts": BATCH, "tokens": batch, "to_string": model.to_string(torch.tensor(batch["left.bos"]))}
    rec["generate"] = []
    for p in GENERATE:
        kw = dict(max_new_tokens=12, do_sample=False, verbose=False)
        rec["generate"].append({
            "text": p,
            "str": model.generate(p, **kw),
            "tokens": model.generate(p, return_type="tokens", **kw).tolist(),
        })
    return rec


def main():
    tok = AutoTokenizer.from_pretrained(QWEN_ID, add_bos_token=True, trust_remote_code=True)
    tl_fallbacks(tok)
    assert tok.eod_id == qt.N_RANKS and len(tok) == qt.N_RANKS + qt.N_SPECIAL
    out = {"model_id": QWEN_ID, "tokenizer": tokenizer_record(tok), "errors": errors_record(), "tl": tl_record(),
           "versions": mf.versions()}
    path = mf.GOLDEN / mf.slug(QWEN_ID) / "tokenizer.json"
    # One line: most of it is id lists (indented, each id would take a line).
    path.write_text(json.dumps(out, ensure_ascii=False, default=mf.json_default) + "\n", encoding="utf8")
    print(f"[qwen tokenizer] {len(PROMPTS)} prompts, {N_FUZZ} fuzz strings -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
