#!/usr/bin/env python
"""16-bit goldens: TransformerLens run with dtype bfloat16 and float16 on the family fixtures.

Usage:  python scripts/reference/dtype_fixtures.py   (after make_fixtures.py and
        make_family_fixtures.py: it only reads their checkpoints in __test__/fixtures/hub)

For each model in MODELS and each dtype in DTYPES, writes
  __test__/fixtures/golden/{slug}/{dtype}.json + .safetensors
with, for both loaders (`unprocessed` = from_pretrained_no_processing, `processed` =
from_pretrained, both with dtype=...):
  {mode}.single.logits      TL's logits on the single prompt (cast to float32 for storage)
  {mode}.batch.logits       on the right-padded two-prompt batch (TL's default padding)
  {mode}.single.last_resid  blocks.{n-1}.hook_resid_post
  {mode}.single.pattern0    blocks.0.attn.hook_pattern
and in the JSON: the dtype of every cached hook in TL's order (`hook_dtypes`), every
state-dict entry's dtype (`state_dict_dtypes`), greedy generation (`generate`: 6 new tokens
with the KV cache, TL's tokens) and, per step, the gap between TL's top two logits
(`generate_top_gaps`) so that a test only asserts the tokens where a 16-bit rounding cannot
flip the argmax.

The float32 goldens the tests compare with are the families' `processed` / `unprocessed`
goldens (same prompts), so a test measures its own 16-bit error next to TL's.
"""
import json

import make_fixtures as mf  # offline HF environment first
import make_family_fixtures  # noqa: F401  (applies the Gemma / Mixtral / remote-code patches)
import torch
from transformer_lens import HookedTransformer

MODELS = [
    "gpt2",
    "EleutherAI/pythia-70m",
    "01-ai/Yi-6B",
    "Qwen/Qwen3-0.6B",
    "microsoft/phi-2",
    "google/gemma-2-2b",
    "bigscience/bloom-560m",
]
# Not Mixtral: TL 2.16.1 cannot run a mixture of experts in 16 bits (its router `W_gate` is an
# nn.Linear made without the model's dtype, so it stays float32 and F.linear refuses the
# bfloat16 input: "expected m1 and m2 to have the same dtype"). The port's 16-bit Mixtral is
# checked against TL's float32 goldens alone.
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
NEW_TOKENS = 6


def load(model_id, mode, dtype):
    kwargs = dict(device="cpu", dtype=dtype)
    if mode == "processed":
        return HookedTransformer.from_pretrained(model_id, **kwargs)
    return HookedTransformer.from_pretrained_no_processing(model_id, **kwargs)


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def golden(model_id, dtype_label):
    dtype = DTYPES[dtype_label]
    tensors, meta = {}, {"model": model_id, "dtype": dtype_label, "versions": mf.versions()}
    for mode in ("unprocessed", "processed"):
        model = load(model_id, mode, dtype)
        tokens = model.to_tokens(mf.PROMPT)
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
            batch = model.to_tokens([mf.PROMPT, mf.PROMPT2])
            batch_logits = model(batch)
        n = model.cfg.n_layers
        tensors[f"{mode}.single.tokens"] = tokens
        tensors[f"{mode}.single.logits"] = logits.float()
        tensors[f"{mode}.batch.tokens"] = batch
        tensors[f"{mode}.batch.logits"] = batch_logits.float()
        tensors[f"{mode}.single.last_resid"] = cache[f"blocks.{n - 1}.hook_resid_post"].float()
        tensors[f"{mode}.single.pattern0"] = cache["blocks.0.attn.hook_pattern"].float()
        meta[mode] = {
            "hook_dtypes": {k: dtype_name(v) for k, v in cache.items()},
            "state_dict_dtypes": {k: dtype_name(v) for k, v in model.state_dict().items()},
            "cfg_dtype": str(model.cfg.dtype).replace("torch.", ""),
        }
        if mode == "unprocessed":
            with torch.no_grad():
                out = model.generate(tokens, max_new_tokens=NEW_TOKENS, do_sample=False, use_past_kv_cache=True,
                                     stop_at_eos=False, verbose=False)
                gaps, seq = [], out[:, : tokens.shape[1]]
                for i in range(NEW_TOKENS):
                    step_logits = model(seq)[0, -1].float()
                    top = torch.topk(step_logits, 2).values
                    gaps.append(float(top[0] - top[1]))
                    seq = out[:, : tokens.shape[1] + i + 1]
            meta["generate"] = out[0].tolist()
            meta["generate_top_gaps"] = gaps
        del model
    base = mf.GOLDEN / mf.slug(model_id)
    meta["converted"] = mf.save_tensors(base / f"{dtype_label}.safetensors", tensors)
    mf.write_json(base / f"{dtype_label}.json", meta)


def main():
    torch.manual_seed(0)
    for model_id in MODELS:
        for label in DTYPES:
            print(f"[dtype] {model_id} {label}", flush=True)
            golden(model_id, label)


if __name__ == "__main__":
    main()
