#!/usr/bin/env python
"""Python TransformerLens timings of HookedEncoder on the BERT-base-shaped checkpoint
(bench/make_checkpoint.py bert): load, forward and run_with_cache (all hooks) at batch 8 x 128.

Usage:  HF_HUB_CACHE=bench/.out/hub BENCH_MODEL=google-bert/bert-base-cased python bench/encoder_tl.py [--reps N]
CPU, torch.set_num_threads(BENCH_THREADS or 2), inference mode. Prints one JSON object on the
last stdout line.
"""
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fresh_load  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = os.environ.get("BENCH_MODEL", "google-bert/bert-base-cased")
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
VOCAB, BATCH, POS = 139, 8, 128


def log(*a):
    print("[tl-encoder]", *a, file=sys.stderr, flush=True)


def token_ids(n):
    """Fixed pseudo-random ids in [0, VOCAB): same LCG as encoder_js.js."""
    out, x = [], 12345
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x >> 8) % VOCAB)
    return out


def bench(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(runs), "runs_ms": [round(r, 1) for r in runs]}


def child():
    """`--child load`: one load in this fresh process."""
    t0 = time.perf_counter()
    import torch
    from transformer_lens import HookedEncoder

    import_s = time.perf_counter() - t0
    torch.set_num_threads(THREADS)
    t1 = time.perf_counter()
    HookedEncoder.from_pretrained(MODEL, device="cpu")
    print(json.dumps({"import_s": import_s, "load_s": time.perf_counter() - t1}), flush=True)


def main():
    if "--child" in sys.argv:
        return child()
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else int(os.environ.get("BENCH_REPS", "5"))
    load = fresh_load.fresh_loads(__file__, MODEL, int(os.environ.get("BENCH_LOAD_REPS", "3")), log)
    import torch
    import transformer_lens
    import transformers
    from transformer_lens import HookedEncoder

    torch.set_num_threads(THREADS)
    model = HookedEncoder.from_pretrained(MODEL, device="cpu")
    tokens = torch.tensor(token_ids(BATCH * POS), dtype=torch.int64).reshape(BATCH, POS)
    with torch.inference_mode():
        fwd = bench(lambda: model(tokens), reps)
        log(f"forward {BATCH}x{POS}: {fwd['median_ms']:.1f} ms")
        n = [0]

        def cached():
            _, cache = model.run_with_cache(tokens)
            n[0] = len(cache)

        rwc = bench(cached, reps)
        log(f"run_with_cache {BATCH}x{POS}: {rwc['median_ms']:.1f} ms ({n[0]} activations)")
    versions = {"python": sys.version.split()[0], "transformer_lens": transformer_lens.__version__ if hasattr(transformer_lens, "__version__") else "?", "torch": torch.__version__, "transformers": transformers.__version__}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"versions": versions, "threads": THREADS, "reps": reps, "load": load, "forward_8x128": fwd, "run_with_cache_8x128": {**rwc, "n_cached": n[0]}, "rss_mib": rss}))


if __name__ == "__main__":
    main()
