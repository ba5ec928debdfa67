#!/usr/bin/env python
"""TransformerLens goldens for the weight-init helpers (utils.calc_fan_in_and_fan_out and
utils.init_{xavier,kaiming}_{uniform,normal}_).

Usage:  python scripts/reference/make_init_fixtures.py

Writes __test__/fixtures/golden/init/init.json:
  fan    TL's calc_fan_in_and_fan_out per shape (or the error TL raises)
  gain   torch's nn.init.calculate_gain, which TL's kaiming inits multiply into `gain`
  cases  per init function, shape and keyword arguments: the exact bound (uniform) or std
         (normal) TL hands to nn.init.uniform_ / nn.init.normal_ (captured by wrapping
         them while TL's function runs), and statistics of TL's output (max |x|, mean, std).
"""
import make_fixtures as mf  # offline HF environment, deterministic torch settings
import torch
from transformer_lens import utils

OUT = mf.GOLDEN / "init"

FAN_SHAPES = [[], [7], [1], [5, 3], [3, 5], [2, 3, 4], [12, 256, 40], [4, 1, 9], [2, 3, 4, 5]]
CASE_SHAPES = [[7], [5, 3], [2, 3, 4], [100_000], [300, 400], [12, 256, 40]]
XAVIER_KWARGS = [{}, {"gain": 0.5}, {"gain": 2.0}]
KAIMING_KWARGS = [
    {},
    {"nonlinearity": "linear"},
    {"nonlinearity": "tanh", "mode": "fan_out"},
    {"nonlinearity": "leaky_relu"},
    {"nonlinearity": "leaky_relu", "a": 0.2},
    {"nonlinearity": "leaky_relu", "a": None},
    {"nonlinearity": "selu", "gain": 1.5},
    {"nonlinearity": "sigmoid", "mode": "fan_out"},
    {"nonlinearity": "conv2d", "gain": 0.25},
    {"nonlinearity": "relu", "mode": "fan_out", "gain": 3.0},
]
GAINS = [
    ("linear", None), ("conv1d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
    ("relu", None), ("leaky_relu", None), ("leaky_relu", 0), ("leaky_relu", 0.2), ("leaky_relu", 3),
    ("selu", None), ("softplus", None),
]


def fan_row(shape):
    try:
        fan_in, fan_out = utils.calc_fan_in_and_fan_out(torch.empty(shape))
        return {"shape": shape, "fan_in": fan_in, "fan_out": fan_out}
    except ValueError as e:
        return {"shape": shape, "error": str(e)}


def gain_row(nonlinearity, param):
    try:
        return {"nonlinearity": nonlinearity, "param": param, "gain": torch.nn.init.calculate_gain(nonlinearity, param)}
    except ValueError as e:
        return {"nonlinearity": nonlinearity, "param": param, "error": str(e)}


def run_captured(fn, param, kwargs):
    """Calls TL's init on `param`, recording the arguments TL passes to nn.init.uniform_/normal_."""
    seen = {}
    uniform, normal = torch.nn.init.uniform_, torch.nn.init.normal_

    def cap_uniform(t, a=0.0, b=1.0, **kw):
        seen.update(dist="uniform", low=float(a), high=float(b))
        return uniform(t, a, b, **kw)

    def cap_normal(t, mean=0.0, std=1.0, **kw):
        seen.update(dist="normal", mean=float(mean), std=float(std))
        return normal(t, mean, std, **kw)

    torch.nn.init.uniform_, torch.nn.init.normal_ = cap_uniform, cap_normal
    try:
        fn(param, **kwargs)
    finally:
        torch.nn.init.uniform_, torch.nn.init.normal_ = uniform, normal
    return seen


def case_row(name, shape, kwargs, seed):
    torch.manual_seed(seed)
    param = torch.empty(shape, dtype=torch.float64)
    seen = run_captured(getattr(utils, f"init_{name}_"), param, kwargs)
    row = {"fn": name, "shape": shape, "kwargs": kwargs, "dist": seen["dist"]}
    if seen["dist"] == "uniform":
        assert seen["low"] == -seen["high"]
        row["bound"] = seen["high"]
    else:
        assert seen["mean"] == 0.0
        row["std"] = seen["std"]
    row["sample"] = {
        "n": param.numel(),
        "max_abs": param.abs().max().item(),
        "mean": param.mean().item(),
        "std": param.std(unbiased=False).item(),
    }
    return row


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases, seed = [], 0
    for name, kwargs_list in [("xavier_uniform", XAVIER_KWARGS), ("xavier_normal", XAVIER_KWARGS),
                              ("kaiming_uniform", KAIMING_KWARGS), ("kaiming_normal", KAIMING_KWARGS)]:
        for kwargs in kwargs_list:
            for shape in CASE_SHAPES:
                seed += 1
                cases.append(case_row(name, shape, kwargs, seed))
    mf.write_json(OUT / "init.json", {
        "versions": mf.versions(),
        "fan": [fan_row(s) for s in FAN_SHAPES],
        "gain": [gain_row(n, p) for n, p in GAINS],
        "cases": cases,
    })
    print(f"[init] {len(cases)} cases -> {OUT / 'init.json'}")


if __name__ == "__main__":
    main()
