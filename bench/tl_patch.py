"""Python-side setup shared by the TL bench scripts: TL 2.16.1 hard-codes the real sizes of
every `google/gemma-*` name, so the Gemma-2-shaped bench checkpoint (`google/gemma-2-2b`, reduced)
needs scripts/reference/tl_gemma_patch.py reading its config.json from the bench's cache."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snapshot(model_id):
    repo = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + model_id.replace("/", "--"))
    return repo / "snapshots" / (repo / "refs" / "main").read_text().strip()


def install():
    """Patches TL's Gemma config table when the bench model is a Gemma."""
    if "gemma" not in os.environ.get("BENCH_MODEL", ""):
        return
    sys.path.insert(0, str(ROOT / "scripts" / "reference"))
    import tl_gemma_patch

    tl_gemma_patch.install(snapshot)
