#!/usr/bin/env python
"""TransformerLens goldens for transformer_lens.evals.

Usage (from anywhere, after make_fixtures.py has written the tiny checkpoints):
    python scripts/reference/make_evals_fixtures.py

Loads the fabricated `gpt2` checkpoint from __test__/fixtures/hub with TL (offline) and writes
    __test__/fixtures/golden/evals/evals.{json,safetensors}

  * sanity_check: TL's loss on its fixed sentence.
  * induction_loss: TL draws its first-half tokens with torch's RNG, which the TS port cannot
    reproduce; the tokens are drawn here with a seeded generator, saved (`induction.first_half`),
    and pushed through TL's own steps (repeat, BOS column, lm_cross_entropy_loss per token, mean
    over the second half), with and without BOS.
  * IOIDataset / ioi_eval: TL's datasets (defaults, symmetric, custom names/templates/nouns with
    more than 21 names so random.sample takes its set branch); their sample strings and item
    tokens are saved, and ioi_eval is run on each.
  * evaluate_on_dataset: on a DataLoader (no shuffle) over tokenize_and_concatenate rows of
    TRAIN_TEXT lines, with truncate cutting it short; the rows are saved.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_fixtures import GOLDEN, TRAIN_TEXT, load_tl, save_tensors, versions, write_json  # noqa: E402

import einops  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformer_lens import evals, utils  # noqa: E402

OUT = GOLDEN / "evals"
MODEL = "gpt2"

CUSTOM_NAMES = [f"N{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXY"]  # 25 > 21: random.sample's set branch
CUSTOM_NAMES[:6] = ["Alice", "Bob", "Charlie", "Dana", "Eve", "Frank"]
CUSTOM = {
    "templates": ["[A] met with [B]. [B] gave the [OBJECT] to [A]", "Then [B] and [A] saw a [ANIMAL]. [B] gave the [OBJECT] to [A]"],
    "names": CUSTOM_NAMES,
    "nouns": {"OBJECT": ["ball", "book", "cup"], "ANIMAL": ["dog", "fox"]},
}


def induction(model, first_half, prepend_bos):
    """TL's induction_loss, steps verbatim, on given first-half tokens."""
    subseq_len = first_half.shape[1]
    repeated = einops.repeat(first_half, "b p -> b (2 p)").clone()
    if prepend_bos:
        repeated[:, 0] = model.tokenizer.bos_token_id
    logits = model(repeated, return_type="logits")
    per_token = utils.lm_cross_entropy_loss(logits, repeated, per_token=True)
    return per_token[:, subseq_len + 1 :].mean()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_tl(MODEL, "processed")
    tensors, meta = {}, {"model": MODEL, "versions": versions()}

    tensors["sanity_check"] = evals.sanity_check(model)

    gen = torch.Generator().manual_seed(1234)
    first_half = torch.randint(100, 500, (3, 16), generator=gen)
    tensors["induction.first_half"] = first_half
    tensors["induction.bos"] = induction(model, first_half, True)
    tensors["induction.no_bos"] = induction(model, first_half, False)
    meta["induction"] = {"batch_size": 3, "subseq_len": 16}

    datasets = {
        "default": dict(num_samples=6),
        "symmetric": dict(num_samples=7, symmetric=True),
        "no_bos": dict(num_samples=3, prepend_bos=False),
        "custom": dict(num_samples=5, **CUSTOM),
        "custom_symmetric": dict(num_samples=4, symmetric=True, **CUSTOM),
    }
    meta["ioi"] = {}
    for name, kw in datasets.items():
        ds = evals.IOIDataset(model.tokenizer, **kw)
        res = evals.ioi_eval(model, dataset=ds, batch_size=2)
        items = [ds[i] for i in range(len(ds))]
        meta["ioi"][name] = {
            "kwargs": kw,
            "samples": ds.samples,
            "prompts": [it["prompt"].tolist() for it in items],
            "IO": [it["IO"].tolist() for it in items],
            "S": [it["S"].tolist() for it in items],
            "result": res,
        }
    # ioi_eval building its own default dataset
    meta["ioi_default_eval"] = {"num_samples": 4, "symmetric": True, "result": evals.ioi_eval(model, num_samples=4, symmetric=True)}

    texts = [line for line in TRAIN_TEXT.split("\n") if line.strip()]
    ds = utils.tokenize_and_concatenate(Dataset.from_dict({"text": texts}), model.tokenizer, max_length=24)
    rows = torch.stack([ds[i]["tokens"] for i in range(len(ds))])
    tensors["dataset.tokens"] = rows
    loader = DataLoader(ds, batch_size=2, shuffle=False, drop_last=True)
    meta["dataset"] = {"texts": texts, "max_length": 24, "batch_size": 2, "n_rows": int(rows.shape[0])}
    tensors["dataset.truncate100"] = torch.tensor(evals.evaluate_on_dataset(model, loader, truncate=100, device="cpu"))
    tensors["dataset.truncate1"] = torch.tensor(evals.evaluate_on_dataset(model, loader, truncate=1, device="cpu"))

    meta["converted"] = save_tensors(OUT / "evals.safetensors", tensors)
    write_json(OUT / "evals.json", meta)
    print({k: (v.tolist() if v.numel() == 1 else list(v.shape)) for k, v in tensors.items()})
    print({k: v["result"] for k, v in meta["ioi"].items()})


if __name__ == "__main__":
    main()
