#!/usr/bin/env python
"""TransformerLens goldens for HookedTransformer.set_tokenizer.

Usage:  python scripts/reference/make_tokenizer_fixtures.py   (after make_fixtures.py)

Loads the fabricated tiny `gpt2` (offline, from __test__/fixtures/hub), sets tokenizers on it
with set_tokenizer and writes __test__/fixtures/golden/tokenizer/set_tokenizer.json: per case the
tokenizer source ("snapshot": the gpt2 snapshot folder; "bare": its tokenizer.json with a
tokenizer_config.json naming only the class, no special tokens, so TL's eos/pad/bos fallbacks
apply), default_padding_side, and what TL ends
up with: special-token ids, padding side, cfg.tokenizer_prepends_bos, to_tokens of a batch
(default side and both explicit sides, with and without BOS) and to_str_tokens.
"""
import shutil
import tempfile
from pathlib import Path

import make_fixtures as mf  # sets the offline HF environment before transformers loads
from transformers import AutoTokenizer

OUT = mf.GOLDEN / "tokenizer"
PROMPTS = ["Hello world", "The quick brown fox jumps", "a"]
CASES = [("snapshot", "right"), ("snapshot", "left"), ("bare", "right"), ("bare", "left")]


def source_dir(kind, tmp):
    snap = mf.snapshot_dir("gpt2")
    if kind == "snapshot":
        return snap
    bare = Path(tmp) / "bare"
    bare.mkdir(exist_ok=True)
    shutil.copy(snap / "tokenizer.json", bare / "tokenizer.json")
    # Without a tokenizer_config.json, AutoTokenizer guesses the class from the folder name.
    mf.write_json(bare / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast"})
    return bare


def case(model, kind, side, tmp):
    model.set_tokenizer(AutoTokenizer.from_pretrained(str(source_dir(kind, tmp))), default_padding_side=side)
    tok = model.tokenizer
    tokens = {"default": model.to_tokens(PROMPTS).tolist()}
    for s in ["left", "right"]:
        for bos in [True, False]:
            tokens[f"{s}.{'bos' if bos else 'nobos'}"] = model.to_tokens(PROMPTS, prepend_bos=bos, padding_side=s).tolist()
    return {
        "source": kind,
        "default_padding_side": side,
        "padding_side": tok.padding_side,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "tokenizer_prepends_bos": model.cfg.tokenizer_prepends_bos,
        "d_vocab": model.cfg.d_vocab,
        "d_vocab_out": model.cfg.d_vocab_out,
        "tokens": tokens,
        "str_tokens": model.to_str_tokens(PROMPTS[1]),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    model = mf.load_tl("gpt2", "processed")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [case(model, kind, side, tmp) for kind, side in CASES]
    mf.write_json(OUT / "set_tokenizer.json", {"versions": mf.versions(), "prompts": PROMPTS, "cases": cases})
    print(f"[tokenizer] {len(cases)} cases -> {OUT / 'set_tokenizer.json'}")


if __name__ == "__main__":
    main()
