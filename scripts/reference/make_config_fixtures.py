#!/usr/bin/env python
"""TransformerLens's get_pretrained_model_config, without weights, as goldens.

Usage:  python scripts/reference/make_config_fixtures.py   (after make_fixtures.py and
        make_family_fixtures.py: it reads their checkpoints' config.json from the fixture cache)

Writes __test__/fixtures/golden/registry/pretrained_configs.json: a list of cases
{name, kwargs, cfg} where cfg is TL's cfg.to_dict() (torch dtypes as strings) for
  - every official name TL hard-codes a config for (names containing "llama": TL never reads
    their config.json, so no file is needed), with default arguments and with
    fold_ln / first_n_layers / default_prepend_bos / dtype variations on a few;
  - every fixture checkpoint (configs read from config.json in the fixture cache), default and
    with fold_ln=True, and Pythia / stanford-crfm training checkpoints by index and by value.
"""
import json
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import torch
from transformer_lens import loading_from_pretrained as loading

OUT = mf.GOLDEN / "registry"


def cfg_of(name, **kwargs):
    cfg = loading.get_pretrained_model_config(name, device="cpu", **kwargs)
    return json.loads(json.dumps(cfg.to_dict(), default=mf.json_default))


def kwargs_json(kwargs):
    return {k: (str(v).replace("torch.", "") if isinstance(v, torch.dtype) else v) for k, v in kwargs.items()}


def main():
    cases = []
    hardcoded = [n for n in loading.OFFICIAL_MODEL_NAMES if "llama" in n.lower()]
    for name in hardcoded:
        try:
            cfg = cfg_of(name)
        except Exception as e:  # TL cannot build some of them offline (it reads their config.json)
            print(f"[skip] {name}: {type(e).__name__}: {e}"[:200])
            continue
        cases.append({"name": name, "kwargs": {}, "cfg": cfg})
    variations = [
        ("meta-llama/Llama-3.2-1B", {"fold_ln": True, "first_n_layers": 2}),
        ("meta-llama/Llama-2-7b-hf", {"default_prepend_bos": False, "dtype": torch.float16}),
        ("codellama/CodeLlama-7b-Python-hf", {}),
    ]
    fixture_ids = [m for m, *_ in mf.MODELS] + ["EleutherAI/pythia-70m", "01-ai/Yi-6B", "Qwen/Qwen2-0.5B", "mistralai/Mistral-7B-v0.1"]
    for name in fixture_ids:
        variations += [(name, {}), (name, {"fold_ln": True})]
    variations += [
        ("EleutherAI/pythia-70m", {"checkpoint_index": 3}),
        ("EleutherAI/pythia-70m", {"checkpoint_value": 2000}),
        ("EleutherAI/pythia-70m", {"checkpoint_index": -1}),
        ("stanford-crfm/alias-gpt2-small-x21", {"checkpoint_value": 150}),
    ]
    for name, kwargs in variations:
        cases.append({"name": name, "kwargs": kwargs_json(kwargs), "cfg": cfg_of(name, **kwargs)})
    OUT.mkdir(parents=True, exist_ok=True)
    mf.write_json(OUT / "pretrained_configs.json", {"cases": cases, "versions": mf.versions()})
    print(f"wrote {len(cases)} cases ({len(hardcoded)} hard-coded names)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
