#!/usr/bin/env python
"""Python TransformerLens timings of HookedEncoderDecoder on the T5-small-shaped checkpoint
(bench/make_checkpoint.py t5-small), the shapes of bench/t5_js.js. One JSON object on the last
stdout line."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fresh_load  # noqa: E402
from tl_bench import THREADS, bench, log, setup, tokens  # noqa: E402

MODEL = os.environ.get("BENCH_MODEL", "google-t5/t5-small")


def import_tl():
    from transformers import T5Config

    # TL 2.16.1 reads T5's n_ctx from `hf_config.max_length`, which transformers 5 configs lack
    # (transformers 4.x: 20).
    if not hasattr(T5Config(), "max_length"):
        T5Config.max_length = 20
    from transformer_lens import HookedEncoderDecoder

    return HookedEncoderDecoder


def child():
    """`--child load`: one load in this fresh process."""
    t0 = time.perf_counter()
    torch = setup()
    HookedEncoderDecoder = import_tl()
    import_s = time.perf_counter() - t0
    with torch.inference_mode():
        t1 = time.perf_counter()
        HookedEncoderDecoder.from_pretrained(MODEL, device="cpu")
        print(json.dumps({"import_s": import_s, "load_s": time.perf_counter() - t1}), flush=True)


def main():
    if "--child" in sys.argv:
        return child()
    from importlib.metadata import version
    import resource

    load = fresh_load.fresh_loads(__file__, MODEL, int(os.environ.get("BENCH_LOAD_REPS", "3")), log)
    torch = setup()
    HookedEncoderDecoder = import_tl()
    reps = int(os.environ.get("BENCH_REPS", "7"))
    result = {
        "impl": "python-transformer-lens",
        "versions": {"python": sys.version.split()[0], "transformer_lens": version("transformer-lens"), "torch": torch.__version__, "transformers": version("transformers")},
        "threads": THREADS,
        "reps": reps,
        "load": load,
    }
    with torch.inference_mode():
        model = HookedEncoderDecoder.from_pretrained(MODEL, device="cpu")
        enc = torch.cat([tokens(128, seed=r) for r in range(8)])
        dec = torch.cat([tokens(128, seed=r) for r in range(8)])
        result["forward_8x128"] = bench(lambda: model(enc, decoder_input=dec), reps)
        log(f"forward 8x128: {result['forward_8x128']['median_ms']:.1f} ms")

        def with_cache():
            logits, cache = model.run_with_cache(enc, decoder_input=dec)
            result["n_cached"] = len(cache)
            del logits, cache

        result["run_with_cache_8x128"] = bench(with_cache, reps)
        log(f"run_with_cache 8x128: {result['run_with_cache_8x128']['median_ms']:.1f} ms")
        prompt = tokens(128, seed=0)
        result["generate_1x128_32"] = bench(lambda: model.generate(prompt, max_new_tokens=32, do_sample=False, stop_at_eos=False, verbose=False), max(3, reps - 4), warmup=1)
        log(f"generate 1x128 +32 greedy: {result['generate_1x128_32']['median_ms']:.1f} ms")
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
