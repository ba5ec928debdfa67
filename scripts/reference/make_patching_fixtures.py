#!/usr/bin/env python
"""TransformerLens goldens for activation patching (patching.py) and head detection (head_detector.py).

Usage:  python scripts/reference/make_patching_fixtures.py   (after make_fixtures.py)

Loads the fabricated tiny `gpt2` (offline, from __test__/fixtures/hub) and writes
__test__/fixtures/golden/patching/{patching,head_detector}.{json,safetensors}:
  patching.*       every get_act_patch_* result for a clean/corrupted token pair with a
                   logit-difference metric, plus generic_activation_patch with index_df rows
  head_detector.*  detect_head for the three built-in patterns x both error measures x the
                   exclude flags, a list of prompts, head subsets and a custom pattern
"""
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import pandas as pd
import torch
from transformer_lens import head_detector as hd
from transformer_lens import patching

MODEL = "gpt2"
CLEAN = "The cat sat on a mat"
SWAP_POS = 2  # corrupted = clean with this position's token replaced
HEAD_SEQ = "ab cd ef ab cd ef gh ab"
HEAD_SEQS = ["ab cd ab cd", "xy zw xy zw q"]

ACT_PATCH = [
    "resid_pre", "resid_mid", "attn_out", "mlp_out",
    "attn_head_out_by_pos", "attn_head_q_by_pos", "attn_head_k_by_pos", "attn_head_v_by_pos",
    "attn_head_pattern_by_pos", "attn_head_pattern_dest_src_pos",
    "attn_head_out_all_pos", "attn_head_q_all_pos", "attn_head_k_all_pos", "attn_head_v_all_pos",
    "attn_head_pattern_all_pos",
    "attn_head_all_pos_every", "attn_head_by_pos_every", "block_every",
]


def golden_patching(model):
    clean = model.to_tokens(CLEAN)
    corrupted = clean.clone()
    corrupted[0, SWAP_POS] = (int(clean[0, SWAP_POS]) + 7) % model.cfg.d_vocab
    a, b = int(clean[0, SWAP_POS]), int(corrupted[0, SWAP_POS])

    def metric(logits):
        return logits[0, -1, a] - logits[0, -1, b]

    _, clean_cache = model.run_with_cache(clean)
    t = {"clean_tokens": clean, "corrupted_tokens": corrupted}
    t["clean_metric"] = metric(model(clean))
    t["corrupted_metric"] = metric(model(corrupted))
    for name in ACT_PATCH:
        t[name] = getattr(patching, f"get_act_patch_{name}")(model, corrupted, clean_cache, metric)

    meta = {"clean": CLEAN, "answer": a, "wrong": b, "names": ACT_PATCH}
    # generic_activation_patch with an index_df (flattened output, rows handed back)
    rows = [[0, 1, 2], [2, 0, 3], [1, 5, 0]]
    out, df = patching.generic_activation_patch(
        model, corrupted, clean_cache, metric, patching.layer_pos_head_vector_patch_setter, "z",
        index_df=pd.DataFrame(rows, columns=["layer", "pos", "head"]), return_index_df=True)
    t["df.z"] = out
    meta["df.z.rows"] = df.values.tolist()
    rows2 = [[2, 3], [0, 0], [1, 4]]
    t["df.resid_pre"] = patching.generic_activation_patch(
        model, corrupted, clean_cache, metric, patching.layer_pos_patch_setter, "resid_pre",
        index_df=pd.DataFrame(rows2, columns=["layer", "pos"]))
    meta["df.resid_pre.rows"] = rows2
    # axis names form with return_index_df
    out, df = patching.generic_activation_patch(
        model, corrupted, clean_cache, metric, patching.layer_head_vector_patch_setter, "v",
        index_axis_names=["layer", "head"], return_index_df=True)
    t["axes.v"] = out
    meta["axes.v.rows"] = df.values.tolist()
    meta["axes.v.columns"] = list(df.columns)
    return t, meta


def golden_heads(model):
    t, meta = {}, {"seq": HEAD_SEQ, "seqs": HEAD_SEQS}
    tokens = model.to_tokens(HEAD_SEQ)
    t["tokens"] = tokens
    for name in hd.HEAD_NAMES:
        t[f"pattern.{name}"] = getattr(hd, f"get_{name}_detection_pattern")(tokens.cpu())
        for em in ["mul", "abs"]:
            for bos in [False, True]:
                for cur in [False, True]:
                    t[f"{name}.{em}.bos{int(bos)}.cur{int(cur)}"] = hd.detect_head(
                        model, HEAD_SEQ, name, exclude_bos=bos, exclude_current_token=cur, error_measure=em)
        # a list of prompts (TL averages per-prompt scores, with default options)
        t[f"{name}.list"] = hd.detect_head(model, HEAD_SEQS, name, exclude_bos=True, error_measure="abs")
    # head subsets, as a list of (layer, head) and as a dict
    t["subset.list"] = hd.detect_head(model, HEAD_SEQ, "induction_head", heads=[(0, 1), (2, 3), (2, 0)])
    t["subset.dict"] = hd.detect_head(model, HEAD_SEQ, "previous_token_head", heads={1: [0, 2]}, error_measure="abs")
    meta["subset.list"] = [[0, 1], [2, 3], [2, 0]]
    meta["subset.dict"] = {"1": [0, 2]}
    # a custom pattern: uniform attention over the previous two tokens (values 0.5 and 1)
    n = tokens.shape[-1]
    custom = torch.zeros(n, n)
    custom[0, 0] = 1
    for i in range(1, n):
        custom[i, i - 1] = 0.5
        custom[i, i] = 0.5
    t["custom.pattern"] = custom
    for em in ["mul", "abs"]:
        t[f"custom.{em}"] = hd.detect_head(model, HEAD_SEQ, custom, error_measure=em)
        t[f"custom.{em}.bos1.cur1"] = hd.detect_head(
            model, HEAD_SEQ, custom, error_measure=em, exclude_bos=True, exclude_current_token=True)
    # with a cache passed in
    _, cache = model.run_with_cache(tokens, remove_batch_dim=True)
    t["cached.duplicate_token_head"] = hd.detect_head(model, HEAD_SEQ, "duplicate_token_head", cache=cache, error_measure="abs")
    return t, meta


def main():
    torch.manual_seed(0)
    model = mf.load_tl(MODEL, "processed")
    out = mf.GOLDEN / "patching"
    out.mkdir(parents=True, exist_ok=True)
    for stem, fn in [("patching", golden_patching), ("head_detector", golden_heads)]:
        t, meta = fn(model)
        meta["converted"] = mf.save_tensors(out / f"{stem}.safetensors", t)
        meta["versions"] = mf.versions()
        mf.write_json(out / f"{stem}.json", meta)
        print(f"[{stem}] {len(t)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
