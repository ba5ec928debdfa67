#!/usr/bin/env python
"""TransformerLens goldens for backward passes: run_with_cache(incl_bwd=True) and backward hooks.

Usage:  python scripts/reference/make_backward_fixtures.py   (after make_fixtures.py)

Loads the fabricated tiny models (offline, from __test__/fixtures/hub) and writes
__test__/fixtures/golden/backward/{stem}.{json,safetensors}:
  incl_bwd.*     run_with_cache(tokens, return_type="loss", incl_bwd=True): every forward
                 activation and every `*_grad` entry, with the cache's key order
  padded.*       the same on a left-padded batch of two prompts (masked loss)
  flags.*        incl_bwd with use_attn_result and use_split_qkv_input on, names filtered
  unprocessed.*  incl_bwd on the unprocessed weights (LayerNorm weights in the graph)
  hooks.*        backward hooks on every hook point during metric(model(tokens)).backward(),
                 with a logit-difference metric, in the order the hooks fired (and the
                 forward hooks' firing order: ln1's fire three times per block)
  modified.*     the same, with a hook that halves the gradient at blocks.1.hook_resid_mid
"""
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import torch

MODEL = "gpt2"
PROMPTS = ["Hello there, how are you", "The quick brown fox jumps over"]


def stash(cache, prefix=""):
    t = {prefix + k: v for k, v in cache.items()}
    return t, list(cache.keys())


def golden_incl_bwd(model, tokens, **kw):
    loss, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True, **kw)
    t, keys = stash(cache)
    t["tokens"] = tokens if isinstance(tokens, torch.Tensor) else model.to_tokens(tokens)
    t["loss"] = loss
    return t, {"keys": keys}


def golden_hooks(model, tokens, modify=None):
    fired, fwd_fired, grads = [], [], {}

    def seen(act, hook):
        fwd_fired.append(hook.name)

    def save(grad, hook):
        fired.append(hook.name)
        grads[hook.name] = grad.detach().clone()

    def halve(grad, hook):
        return (grad * 0.5,)

    a, b = int(tokens[0, 3]), int(tokens[0, 5])
    bwd = [(lambda name: True, save)]
    if modify:
        bwd.append((modify, halve))
    with model.hooks(fwd_hooks=[(lambda name: True, seen)], bwd_hooks=bwd):
        logits = model(tokens)
        metric = logits[0, -1, a] - logits[0, -1, b]
        metric.backward()
    t = dict(grads)
    t["tokens"] = tokens
    t["metric"] = metric
    return t, {"fired": fired, "fwd_fired": fwd_fired, "answer": a, "wrong": b, "modify": modify}


def main():
    torch.set_grad_enabled(True)
    torch.manual_seed(0)
    out = mf.GOLDEN / "backward"
    out.mkdir(parents=True, exist_ok=True)
    model = mf.load_tl(MODEL, "processed")
    tokens = model.to_tokens(mf.PROMPT)
    runs = [
        ("incl_bwd", lambda: golden_incl_bwd(model, tokens)),
        ("padded", lambda: golden_incl_bwd(model, PROMPTS, padding_side="left")),
        ("hooks", lambda: golden_hooks(model, tokens)),
        ("modified", lambda: golden_hooks(model, tokens, modify="blocks.1.hook_resid_mid")),
    ]
    for stem, fn in runs:
        t, meta = fn()
        model.zero_grad(set_to_none=True)
        model.reset_hooks()
        meta["converted"] = mf.save_tensors(out / f"{stem}.safetensors", t)
        meta["versions"] = mf.versions()
        mf.write_json(out / f"{stem}.json", meta)
        print(f"[{stem}] {len(t)} tensors")

    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    names = lambda n: n.startswith("blocks.1.") or n == "hook_embed"  # noqa: E731
    t, meta = golden_incl_bwd(model, tokens, names_filter=names)
    meta["names_filter"] = "blocks.1.* and hook_embed"
    meta["converted"] = mf.save_tensors(out / "flags.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "flags.json", meta)
    print(f"[flags] {len(t)} tensors")

    model = mf.load_tl(MODEL, "unprocessed")
    t, meta = golden_incl_bwd(model, tokens)
    meta["converted"] = mf.save_tensors(out / "unprocessed.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "unprocessed.json", meta)
    print(f"[unprocessed] {len(t)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
