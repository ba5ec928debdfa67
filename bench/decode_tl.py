#!/usr/bin/env python
"""Greedy decode throughput of Python TransformerLens on the benchmark checkpoint.

Usage: HF_HUB_CACHE=bench/.out/hub python bench/decode_tl.py   (last stdout line: JSON)
Settings mirror bench/decode_common.js; BENCH_DTYPE (float32 default, bfloat16, float16) is TL's
`dtype`."""
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

import tl_patch  # noqa: E402

tl_patch.install()

NEW_TOKENS, PROMPT_LEN, BATCHES = 128, 16, [1, 8]


def prompt(batch):
    return torch.tensor([[(r * 31 + i * 17) % 500 for i in range(PROMPT_LEN)] for r in range(batch)])


def main():
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    torch.set_grad_enabled(False)
    dtype = getattr(torch, os.environ.get("BENCH_DTYPE", "float32"))
    model = HookedTransformer.from_pretrained_no_processing(os.environ.get("BENCH_MODEL", "gpt2"), device="cpu", dtype=dtype)
    out = {"tokens_per_s": {}}
    for b in BATCHES:
        p = prompt(b)
        kw = dict(do_sample=False, stop_at_eos=False, verbose=False, return_type="tokens")
        model.generate(p, max_new_tokens=4, **kw)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            model.generate(p, max_new_tokens=NEW_TOKENS, **kw)
            best = min(best, time.perf_counter() - t0)
        out["tokens_per_s"][str(b)] = b * NEW_TOKENS / best
        print(f"[tl decode] batch {b}: {best * 1000:.0f} ms, {out['tokens_per_s'][str(b)]:.1f} tokens/s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
