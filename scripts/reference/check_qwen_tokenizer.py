#!/usr/bin/env python
"""Checks qwen_remote/tokenization_qwen.py (the fixture's stand-in) against the real one.

Usage:  python scripts/reference/check_qwen_tokenizer.py PATH/TO/REAL/tokenization_qwen.py

The real file (from any Qwen/Qwen-* repo; not in this repository) numbers the special tokens
from a fixed 151643, so both classes read a padded copy of the fixture vocabulary here: the
fixture's ranks, then filler tokens up to 151643 ranks that no input reaches (8 bytes starting
with 0xff, which no UTF-8 text holds, with halves that are no tokens). Loaded as TL loads them
(AutoTokenizer, trust_remote_code, add_bos_token=True, then TL's set_tokenizer fallbacks), the two
must agree on everything qwen_tokenizer_fixtures.py records, on its prompts and fuzz strings.
"""
import shutil
import sys
import tempfile
from pathlib import Path

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import qwen_tiktoken as qt
import qwen_tokenizer_fixtures as qf
from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent
REAL_SPECIAL_START = 151643


def padded_ranks():
    ranks = dict(qt.build_ranks())
    i = 0
    while len(ranks) < REAL_SPECIAL_START:
        ranks[b"\xff" + i.to_bytes(7, "big")] = len(ranks)
        i += 1
    return ranks


def folder(tmp, name, code, ranks):
    d = Path(tmp) / name
    d.mkdir()
    shutil.copy(code, d / "tokenization_qwen.py")
    qt.write_tiktoken(ranks, d / "qwen.tiktoken")
    mf.write_json(d / "tokenizer_config.json", qt.TOKENIZER_CONFIG)
    tok = AutoTokenizer.from_pretrained(str(d), add_bos_token=True, trust_remote_code=True)
    qf.tl_fallbacks(tok)
    return tok


def main(real):
    ranks = padded_ranks()
    with tempfile.TemporaryDirectory() as tmp:
        ours = folder(tmp, "ours", HERE / "qwen_remote" / "tokenization_qwen.py", ranks)
        theirs = folder(tmp, "real", real, ranks)
        a, b = qf.tokenizer_record(ours), qf.tokenizer_record(theirs)
    assert a.keys() == b.keys()
    bad = [k for k in a if a[k] != b[k]]
    for k in bad:
        print(f"DIFFERS: {k}\n  stand-in {a[k]!r}\n  real     {b[k]!r}")
    print(f"{len(a) - len(bad)} of {len(a)} records agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
