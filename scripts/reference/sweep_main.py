"""The command line of the sweeps (sweep_families.py, sweep_encoders.py): OUT_DIR [FILTER ...]."""
import sys
from pathlib import Path

import torch


def run_sweep(variants, sweep_variant):
    """Runs sweep_variant(OUT_DIR, name, model_id, overrides) for every (name, model_id,
    overrides) of `variants` whose name contains one of the FILTER arguments (all without)."""
    out = Path(sys.argv[1]).resolve()
    filters = sys.argv[2:]
    torch.manual_seed(0)
    for name, model_id, overrides in variants:
        if filters and not any(f in name for f in filters):
            continue
        sweep_variant(out, name, model_id, overrides)
    return 0


def write_variant(mf, root, meta, tensors):
    """A variant's tl.safetensors (when it has tensors) and tl.json, with make_fixtures `mf`."""
    meta["converted"] = mf.save_tensors(root / "tl.safetensors", tensors) if tensors else {}
    meta["versions"] = mf.versions()
    mf.write_json(root / "tl.json", meta)
