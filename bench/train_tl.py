#!/usr/bin/env python
"""Python timings for `bench/train.js`: TL's train step on the demo model, tuned-lens's
training step on the GPT-2-small-shaped checkpoint, and tuned-lens's trajectory statistics over
a 12-layer x 128-position cache. CPU, torch.set_num_threads(BENCH_THREADS or 2). Prints one JSON
object on the last stdout line."""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
REPS = int(os.environ.get("BENCH_REPS", "5"))
ROOT = os.path.join(os.path.dirname(__file__), "..")


def log(*a):
    print("[py]", *a, file=sys.stderr, flush=True)


def lcg(n, seed, vocab):
    out, x = [], (seed * 7919 + 12345) & 0xFFFFFFFF
    for _ in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x >> 8) % vocab)
    return out


def timed(fn, reps=REPS):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def train_step():
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    d = os.path.join(ROOT, "models", "demo-induction")
    cfg = json.load(open(os.path.join(d, "config.json")))
    keep = set(HookedTransformerConfig.__dataclass_fields__)
    cfg = {k: v for k, v in cfg.items() if k in keep and k not in ("n_params", "device", "dtype")}
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    model.load_state_dict(load_file(os.path.join(d, "model.safetensors")), strict=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    toks = torch.tensor(lcg(32 * cfg["n_ctx"], 1, cfg["d_vocab"])).reshape(32, cfg["n_ctx"])

    def step():
        loss = model(toks, return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    return timed(step)


def lens_step():
    from transformers import AutoModelForCausalLM
    from tuned_lens import TunedLens

    model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
    model.requires_grad_(False)
    lens = TunedLens.from_model(model)
    opt = torch.optim.SGD(lens.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    toks = torch.tensor(lcg(2 * 128, 2, 512)).reshape(2, 128)

    def step():
        # tuned-lens's train_loop body (loss KL, shift 0), as it runs on this device.
        with torch.no_grad():
            out = model(input_ids=toks, output_hidden_states=True)
        labels = out.logits.float().log_softmax(-1)
        for i, h in enumerate(out.hidden_states[:-1]):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = lens(h, idx=i)
                loss = torch.sum(labels.exp() * (labels - logits.log_softmax(-1)), dim=-1).mean()
            loss.backward()
        torch.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)

    return timed(step)


def trajectory():
    from transformer_lens import HookedTransformer
    from tuned_lens import TunedLens
    from tuned_lens.plotting import PredictionTrajectory
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
    lens = TunedLens.from_model(hf)
    model = HookedTransformer.from_pretrained_no_processing("gpt2", hf_model=hf, device="cpu")
    ids = torch.tensor([lcg(128, 3, 512)])
    targets = torch.roll(ids, -1, dims=1)  # the next token (the first wraps around)
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids)

    def stats():
        with torch.no_grad():
            t = PredictionTrajectory.from_lens_and_cache(lens, ids, cache, logits, targets=targets)
            t.entropy(), t.forward_kl(), t.max_probability(), t.rank()

    return timed(stats)


def main():
    out = {}
    for name, fn in [("train_step_ms", train_step), ("lens_step_ms", lens_step), ("trajectory_ms", trajectory)]:
        log(name)
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 -- report and go on
            log(f"{name} failed: {e!r}")
            out[name] = None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
