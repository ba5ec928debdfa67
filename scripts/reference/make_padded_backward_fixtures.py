#!/usr/bin/env python3
"""Gradient goldens on a left-padded batch for the rotary / grouped-query families.

make_family_fixtures.py records `run_with_cache(incl_bwd=True)` on one prompt per family; this
adds the same run on make_backward_fixtures.PROMPTS, left-padded (masked loss), for families whose
attention has rotary positions moved by the padding, grouped K/V heads, q/k norms or a sliding
window, from the family checkpoints already in __test__/fixtures/hub:

  golden/{slug}/backward_padded.{safetensors,json}   keys in TL's order, every activation and
                                                     gradient, the tokens and the loss

Usage: python scripts/reference/make_padded_backward_fixtures.py   (TL 2.16.1, see requirements.txt)
"""
import sys

import torch

import make_fixtures as mf
import make_backward_fixtures as mb

MODELS = ["01-ai/Yi-6B", "Qwen/Qwen3-0.6B", "mistralai/Mistral-7B-v0.1"]


def main():
    torch.set_grad_enabled(True)
    for model_id in MODELS:
        model = mf.load_tl(model_id, "processed")
        t, meta = mb.golden_incl_bwd(model, mb.PROMPTS, padding_side="left")
        model.zero_grad(set_to_none=True)
        meta = {"model_id": model_id, "loader": "from_pretrained", "prompts": mb.PROMPTS, "padding_side": "left", **meta}
        out = mf.GOLDEN / mf.slug(model_id)
        meta["converted"] = mf.save_tensors(out / "backward_padded.safetensors", t)
        meta["versions"] = mf.versions()
        mf.write_json(out / "backward_padded.json", meta)
        print(f"[backward_padded] {model_id}: {len(t)} tensors, {(out / 'backward_padded.safetensors').stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
