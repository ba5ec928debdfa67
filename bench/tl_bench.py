#!/usr/bin/env python
"""Python TransformerLens timings on the benchmark checkpoint (see bench/README.md).

Usage:  HF_HUB_CACHE=bench/.out/hub python bench/tl_bench.py [--reps N] [--load-reps N]

Runs on CPU with torch.set_num_threads(BENCH_THREADS or 2) under
torch.inference_mode(). Prints progress on stderr and one JSON object on the
last stdout line. Internal modes (child processes): --child load | --child rss.
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SEED_VOCAB = 512  # the fixture tokenizer's vocab; ids stay below it
MODEL = os.environ.get("BENCH_MODEL", "gpt2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fresh_load  # noqa: E402
import tl_patch  # noqa: E402

tl_patch.install()


def log(*a):
    print("[tl]", *a, file=sys.stderr, flush=True)


def tokens(n, seed=0):
    """Fixed pseudo-random ids in [0, 512): same LCG as js_bench.js."""
    import torch

    out = []
    x = (seed * 7919 + 12345) & 0xFFFFFFFF
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x >> 8) % SEED_VOCAB)
    return torch.tensor([out], dtype=torch.int64)


def setup():
    import torch

    torch.set_num_threads(THREADS)
    torch.set_grad_enabled(False)
    return torch


def load():
    from transformer_lens import HookedTransformer

    return HookedTransformer.from_pretrained(MODEL, device="cpu")


def child(mode):
    t0 = time.perf_counter()
    torch = setup()
    import transformer_lens  # noqa: F401

    import_s = time.perf_counter() - t0
    with torch.inference_mode():
        t0 = time.perf_counter()
        model = load()
        load_s = time.perf_counter() - t0
        out = {"import_s": import_s, "load_s": load_s}
        if mode == "rss":
            import resource

            logits, cache = model.run_with_cache(tokens(128))
            out["n_cached"] = len(cache)
            del logits, cache
            out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out), flush=True)


def run_child(mode):
    return fresh_load.run_child(__file__, mode)


def bench(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(ts), "min_ms": min(ts), "runs_ms": [round(t, 2) for t in ts]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", choices=["load", "rss"])
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "7")))
    ap.add_argument("--load-reps", type=int, default=int(os.environ.get("BENCH_LOAD_REPS", "3")))
    args = ap.parse_args()
    if args.child:
        return child(args.child)

    from importlib.metadata import version

    torch = setup()
    result = {
        "impl": "python-transformer-lens",
        "versions": {
            "python": sys.version.split()[0],
            "transformer_lens": version("transformer-lens"),
            "torch": torch.__version__,
            "transformers": version("transformers"),
        },
        "threads": torch.get_num_threads(),
        "reps": args.reps,
    }

    result["load"] = fresh_load.fresh_loads(__file__, MODEL, args.load_reps, log)

    # Before this process grows: Linux carries a parent's peak RSS over into a spawned child's.
    r = run_child("rss")
    result["peak_rss"] = {"kib": r["maxrss_kib"], "mib": r["maxrss_kib"] / 1024, "n_cached": r["n_cached"]}
    log(f"peak RSS (load + run_with_cache 1x128): {result['peak_rss']['mib']:.0f} MiB")

    with torch.inference_mode():
        model = load()
        t128, t1024 = tokens(128), tokens(1024, seed=1)

        result["forward_128"] = bench(lambda: model(t128), args.reps)
        log(f"forward 1x128: {result['forward_128']['median_ms']:.1f} ms")
        result["forward_1024"] = bench(lambda: model(t1024), max(3, args.reps - 2))
        log(f"forward 1x1024: {result['forward_1024']['median_ms']:.1f} ms")

        def with_cache():
            logits, cache = model.run_with_cache(t128)
            del logits, cache

        result["run_with_cache_128"] = bench(with_cache, args.reps)
        log(f"run_with_cache 1x128: {result['run_with_cache_128']['median_ms']:.1f} ms")

        noop = lambda t, hook: None  # noqa: E731
        hooks = [(f"blocks.{l}.hook_resid_post", noop) for l in range(model.cfg.n_layers)]
        # Interleave plain and hooked runs so drift affects both alike.
        plain, hooked = [], []
        for _ in range(2):
            model(t128)
            model.run_with_hooks(t128, fwd_hooks=hooks)
        pairs = 2 * args.reps - 1
        for _ in range(pairs):
            t0 = time.perf_counter()
            model(t128)
            plain.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            model.run_with_hooks(t128, fwd_hooks=hooks)
            hooked.append((time.perf_counter() - t0) * 1000)
        result["hooks_12_noop_128"] = {
            "n_hooks": len(hooks),
            "pairs": pairs,
            "plain_median_ms": statistics.median(plain),
            "hooked_median_ms": statistics.median(hooked),
            # median of the per-pair differences: steadier than a difference of medians
            "overhead_ms": statistics.median(h - p for h, p in zip(hooked, plain)),
        }
        log(f"12 no-op hooks overhead: {result['hooks_12_noop_128']['overhead_ms']:.2f} ms")
        del model

    # incl_bwd calls loss.backward(): autograd on, and a model loaded outside inference mode
    # (its parameters' .grad are filled too, as for any TL user).
    with torch.enable_grad():
        model = load()
        t128 = tokens(128)

        def incl_bwd():
            loss, cache = model.run_with_cache(t128, return_type="loss", incl_bwd=True)
            del loss, cache
            model.zero_grad(set_to_none=True)

        result["incl_bwd_128"] = bench(incl_bwd, args.reps)
        log(f"run_with_cache 1x128 loss + incl_bwd: {result['incl_bwd_128']['median_ms']:.1f} ms")
        del model

    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
