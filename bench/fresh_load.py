"""Load timings as the bench takes them for every shape (TL's and ours alike): the checkpoint's
files are read once first, so that no side pays for a cold page cache that the other then finds
warm, and each load runs in a fresh process (`<script> --child load`, which prints
`{"import_s", "load_s"}` on its last stdout line); the result is their median."""
import json
import os
import statistics
import subprocess
import sys


def warm_page_cache(model):
    """Reads every file of `model`'s snapshot in HF_HUB_CACHE (best effort)."""
    hub = os.environ.get("HF_HUB_CACHE")
    if not hub:
        return
    try:
        repo = os.path.join(hub, "models--" + model.replace("/", "--"))
        rev = open(os.path.join(repo, "refs", "main")).read().strip()
        snap = os.path.join(repo, "snapshots", rev)
        for name in os.listdir(snap):
            with open(os.path.join(snap, name), "rb") as f:
                while f.read(64 << 20):
                    pass
    except OSError:
        pass


def run_child(script, mode):
    """`script --child mode` in a fresh Python process; its last stdout line parsed."""
    r = subprocess.run([sys.executable, os.path.abspath(script), "--child", mode],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def fresh_loads(script, model, reps, log=lambda *a: None):
    """`reps` loads of `model` by `script`, each in a fresh process after warming the page cache."""
    warm_page_cache(model)
    loads = []
    for i in range(reps):
        r = run_child(script, "load")
        log(f"load {i + 1}/{reps}: {r['load_s']:.2f}s (import {r['import_s']:.2f}s)")
        loads.append(r)
    return {
        "median_ms": statistics.median(r["load_s"] for r in loads) * 1000,
        "runs_ms": [round(r["load_s"] * 1000, 1) for r in loads],
        "import_median_ms": statistics.median(r["import_s"] for r in loads) * 1000,
    }
