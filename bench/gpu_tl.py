#!/usr/bin/env python
"""Python TransformerLens GPU timings (see gpu.js). One JSON object on the last stdout line."""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SHAPES = json.load(open(os.path.join(HERE, "gpu_shapes.json")))


def log(*a):
    print("[tl]", *a, file=sys.stderr, flush=True)


def ids(b, n):
    from tl_bench import tokens  # the same pseudo-random ids as every bench side

    return tokens(b * n).reshape(b, n).cuda()


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def main():
    from transformer_lens import HookedTransformer

    torch.set_grad_enabled(False)
    reps = int(os.environ.get("BENCH_REPS", "10"))
    out = {"impl": "transformer_lens", "versions": {"torch": torch.__version__}, "rows": {}}
    import transformer_lens

    out["versions"]["transformer_lens"] = getattr(transformer_lens, "__version__", "2.16.1")
    loads = []
    model = None
    for _ in range(3):
        del model
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = HookedTransformer.from_pretrained("gpt2", device="cuda")
        torch.cuda.synchronize()
        loads.append((time.perf_counter() - t0) * 1000)
    out["rows"]["load"] = statistics.median(loads)
    log("load", round(out["rows"]["load"], 1), "ms")
    with torch.inference_mode():
        for _, b, n in SHAPES["forward"]:
            t = ids(b, n)
            out["rows"][f"forward {b}×{n}"] = timed(lambda: model(t), reps)
            log(f"forward {b}×{n}", round(out["rows"][f"forward {b}×{n}"], 2), "ms")
        for _, b, n in SHAPES["cache"]:
            t = ids(b, n)

            def run():
                logits, cache = model.run_with_cache(t)
                del logits, cache

            out["rows"][f"runWithCache {b}×{n}"] = timed(run, reps)
            log(f"runWithCache {b}×{n}", round(out["rows"][f"runWithCache {b}×{n}"], 2), "ms")
        for _, b, prompt, steps in SHAPES["decode"]:
            t = ids(b, prompt)
            ms = timed(lambda: model.generate(t, max_new_tokens=steps, do_sample=False, verbose=False, stop_at_eos=False), max(3, reps // 2), 1)
            out["rows"][f"decode b{b}"] = b * steps / (ms / 1000)
            log(f"decode b{b}", round(out["rows"][f"decode b{b}"], 1), "tok/s")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
