#!/usr/bin/env python
"""TL's rotary tables (`rotary_sin` / `rotary_cos` of an attention layer) for configs no fixture
checkpoint exercises: Llama 3.1's NTK-by-parts scaling (used by TL's hard-coded Llama 3.x
configs, whose real widths are too large for a fixture) and adjacent pairs.

Usage:  python scripts/reference/make_rotary_fixtures.py
Writes __test__/fixtures/golden/rotary/tables.json: cases {cfg, sin, cos} ([n_ctx][rotary_dim]).
"""
import json
import sys

import make_fixtures as mf
import torch
from transformer_lens.components import Attention
from transformer_lens.HookedTransformerConfig import HookedTransformerConfig

BASE = dict(d_model=64, d_head=16, n_heads=4, n_layers=1, n_ctx=48, d_vocab=10, act_fn="silu",
            positional_embedding_type="rotary", normalization_type="RMS")
CASES = [
    dict(rotary_dim=16, rotary_base=500000.0, use_NTK_by_parts_rope=True, NTK_by_parts_factor=32.0,
         NTK_by_parts_low_freq_factor=1.0, NTK_by_parts_high_freq_factor=4.0, NTK_original_ctx_len=64),
    dict(rotary_dim=16, rotary_base=500000.0, use_NTK_by_parts_rope=True, NTK_by_parts_factor=8.0,
         NTK_by_parts_low_freq_factor=1.0, NTK_by_parts_high_freq_factor=4.0, NTK_original_ctx_len=8192),
    dict(rotary_dim=8, rotary_base=10000, rotary_adjacent_pairs=True),
]


def main():
    out = []
    for extra in CASES:
        cfg = HookedTransformerConfig(**BASE, **extra)
        attn = Attention(cfg)
        out.append({"cfg": {**BASE, **extra}, "sin": attn.rotary_sin.tolist(), "cos": attn.rotary_cos.tolist()})
    (mf.GOLDEN / "rotary").mkdir(parents=True, exist_ok=True)
    mf.write_json(mf.GOLDEN / "rotary" / "tables.json", {"cases": out, "versions": mf.versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
