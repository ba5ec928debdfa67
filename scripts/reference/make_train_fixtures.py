#!/usr/bin/env python
"""Goldens for training: TL's `train` loop body with torch's optimisers, and TL's init.

Usage:  python scripts/reference/make_train_fixtures.py

Writes __test__/fixtures/golden/train/:
  start/           a tiny TL model (TL-format folder: config.json + model.safetensors) whose
                   1-D parameters are re-randomised (so a port that ignores a bias fails)
  tokens.json      the batches, in order ([steps * batch, seq])
  runs.json        per optimiser setting: the train config (camelCase), each step's loss, and
                   the file of the parameters after the last step
  {run}.safetensors  TL's state dict after the run
  init.json        per init_mode: TL's config after __post_init__ and each parameter's std and
                   max |x| from HookedTransformer(cfg) (distributions, not bits)

Each run is exactly TL's `train` loop on fixed (unshuffled) batches: loss = model(tokens,
return_type="loss"); backward; clip_grad_norm_; optimizer.step(); scheduler.step(); zero_grad,
with TL's optimiser choice (Adam, AdamW when weight_decay is set, SGD with momentum) and TL's
LambdaLR warmup.
"""
import json

import make_fixtures as mf  # offline environment, deterministic torch settings
import torch
from safetensors.torch import save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

OUT = mf.GOLDEN / "train"
STEPS, BATCH, SEQ, VOCAB = 4, 3, 10, 17

CFG = dict(n_layers=2, d_model=16, d_head=4, n_heads=4, n_ctx=SEQ, d_vocab=VOCAB, act_fn="gelu_new",
           normalization_type="LN", seed=3, model_name="train-fixture")

RUNS = {
    "adam": dict(optimizerName="Adam", lr=1e-3),
    "adamw_clip": dict(optimizerName="Adam", lr=2e-3, weightDecay=0.05, maxGradNorm=0.5),
    "sgd_momentum": dict(optimizerName="SGD", lr=0.05, momentum=0.9, weightDecay=0.01, warmupSteps=2),
    "sgd_plain": dict(optimizerName="SGD", lr=0.1),
}


def params(model):
    return {k: v.detach().clone().contiguous() for k, v in model.named_parameters()}


def config_json(cfg):
    d = {}
    for k, v in cfg.to_dict().items():
        if isinstance(v, torch.dtype):
            v = str(v).replace("torch.", "")
        if isinstance(v, (str, int, float, bool, type(None), list)):
            d[k] = v
    return d


def start_model():
    model = HookedTransformer(HookedTransformerConfig(**CFG))
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 or name.endswith(("b_Q", "b_K", "b_V")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith(".w") else 0.0))
    return model


def run(model, tokens, rc):
    lr = rc["lr"]
    wd = rc.get("weightDecay")
    if rc["optimizerName"] in ("Adam", "AdamW"):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd) if wd is not None else torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd or 0.0, momentum=rc.get("momentum", 0.0))
    warm = rc.get("warmupSteps", 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda s: min(1.0, s / warm)) if warm > 0 else None
    losses = []
    for s in range(STEPS):
        batch = tokens[s * BATCH:(s + 1) * BATCH]
        loss = model(batch, return_type="loss")
        loss.backward()
        if rc.get("maxGradNorm") is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), rc["maxGradNorm"])
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def init_stats():
    out = {}
    base = dict(n_layers=2, d_model=96, d_head=16, n_ctx=64, d_vocab=300, act_fn="gelu", seed=0)
    for mode, extra in [("gpt2", {}), ("xavier_uniform", {}), ("xavier_normal", {"initializer_range": 0.7}),
                        ("kaiming_uniform", {}), ("kaiming_normal", {"attn_only": True}), ("muP", {"n_key_value_heads": 2}),
                        ("xavier_uniform+moe", {"num_experts": 4, "experts_per_token": 2, "act_fn": "silu",
                                                "normalization_type": "RMS", "gated_mlp": True})]:
        key, mode = mode, mode.split("+")[0]
        cfg = HookedTransformerConfig(**{**base, **extra}, init_mode=mode)
        m = HookedTransformer(cfg)
        stats = {k: {"std": p.detach().double().std(unbiased=False).item(), "maxabs": p.detach().abs().max().item(),
                     "mean": p.detach().double().mean().item(), "shape": list(p.shape)}
                 for k, p in m.named_parameters()}
        out[key] = {"config_in": {**base, **extra, "init_mode": mode}, "config": config_json(m.cfg), "params": stats}
    return out


def main():
    torch.set_grad_enabled(True)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokens = torch.randint(0, VOCAB, (STEPS * BATCH, SEQ), generator=torch.Generator().manual_seed(5))
    model = start_model()
    start = params(model)
    (OUT / "start").mkdir(exist_ok=True)
    save_file(start, str(OUT / "start" / "model.safetensors"))
    (OUT / "start" / "config.json").write_text(json.dumps(config_json(model.cfg), indent=1, sort_keys=True))
    (OUT / "tokens.json").write_text(json.dumps(tokens.tolist()))
    runs = {}
    for name, rc in RUNS.items():
        model.load_state_dict(start, strict=False)
        losses = run(model, tokens, rc)
        save_file(params(model), str(OUT / f"{name}.safetensors"))
        final = model(tokens, return_type="loss").item()
        runs[name] = {"config": {**rc, "numEpochs": 1, "batchSize": BATCH}, "losses": losses, "final_loss": final,
                      "params": f"{name}.safetensors"}
    (OUT / "runs.json").write_text(json.dumps(runs, indent=1))
    (OUT / "init.json").write_text(json.dumps(init_stats(), indent=1, sort_keys=True))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
