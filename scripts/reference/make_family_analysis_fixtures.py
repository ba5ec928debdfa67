#!/usr/bin/env python
"""TransformerLens analysis goldens on every decoder family's fixture checkpoint.

Usage:  python scripts/reference/make_family_analysis_fixtures.py   (after make_fixtures.py and
        make_family_fixtures.py; it only reads their checkpoints from __test__/fixtures/hub;
        TL_FAMILIES=id1,id2 regenerates only those models' goldens)

For each model id in IDS (every family fixture), loads the processed model with TL (offline)
and writes __test__/fixtures/golden/{slug}/analysis.{json,safetensors}:
  weights.{W_Q,W_K,W_V,W_O,b_Q,b_K,b_V,b_O,W_in,W_out,W_gate,W_U,W_E}  TL's stacked properties
        (grouped-query K/V expanded as TL's W_K / W_V properties do); W_gate where gated
  circuits.QK.AB / circuits.OV.AB   model.QK / model.OV products of layer 0, head 0
  cache.accumulated_resid / cache.decompose_resid / cache.stack_head_results   on the prompt,
        with their labels in the JSON
"""
import json
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import gemma_fixtures  # noqa: F401  (TL's Gemma config table patched for the reduced checkpoints)
import torch

IDS = [
    "EleutherAI/pythia-70m",
    "01-ai/Yi-6B",
    "Qwen/Qwen2-0.5B",
    "mistralai/Mistral-7B-v0.1",
    "EleutherAI/gpt-neo-125M",
    "EleutherAI/gpt-j-6B",
    "facebook/opt-125m",
    "microsoft/phi-2",
    "microsoft/phi-4",
    "Qwen/Qwen3-0.6B",
    "bigscience/bloom-560m",
    "google/gemma-2b",
    "google/gemma-2-2b",
    "bigcode/santacoder",
    "Qwen/Qwen-1_8B",
]
WEIGHTS = ["W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O", "W_in", "W_out", "W_U", "W_E"]


def golden(model_id):
    model = mf.load_tl(model_id, "processed")
    t, meta = {}, {"model_id": model_id, "prompt": mf.PROMPT}
    for name in WEIGHTS:
        t[f"weights.{name}"] = getattr(model, name)
    if model.cfg.gated_mlp:
        t["weights.W_gate"] = model.W_gate
    t["circuits.QK.AB"] = model.QK[0, 0].AB
    t["circuits.OV.AB"] = model.OV[0, 0].AB
    _, cache = model.run_with_cache(model.to_tokens(mf.PROMPT))
    acc, acc_labels = cache.accumulated_resid(return_labels=True)
    dec, dec_labels = cache.decompose_resid(return_labels=True)
    heads, head_labels = cache.stack_head_results(return_labels=True)
    t["cache.accumulated_resid"], t["cache.decompose_resid"], t["cache.stack_head_results"] = acc, dec, heads
    meta["labels"] = {"accumulated_resid": acc_labels, "decompose_resid": dec_labels, "stack_head_results": head_labels}
    out = mf.GOLDEN / mf.slug(model_id)
    meta["converted"] = mf.save_tensors(out / "analysis.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "analysis.json", meta)
    print(f"[analysis] {model_id}: {len(t)} tensors")


def main():
    # TL_FAMILIES=id1,id2 regenerates only those models' goldens (as make_family_fixtures.py).
    only = [x for x in mf.os.environ.get("TL_FAMILIES", "").split(",") if x]
    assert not set(only) - set(IDS), f"TL_FAMILIES names no model here: {sorted(set(only) - set(IDS))}"
    for model_id in IDS:
        if only and model_id not in only:
            continue
        if (mf.GOLDEN / mf.slug(model_id)).exists():
            golden(model_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
