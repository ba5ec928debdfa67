#!/usr/bin/env python
"""tuned-lens 0.2.0 goldens: Unembed, LogitLens, TunedLens, lens artifacts, PredictionTrajectory.

Usage (after make_fixtures.py and make_family_fixtures.py; offline):
    python scripts/reference/make_lens_fixtures.py

Reads the fabricated checkpoints in __test__/fixtures/hub (`gpt2`, `01-ai/Yi-6B`) with TL and
writes:
  __test__/fixtures/lens/gpt2/{config.json,params.pt}
      A tuned lens for the unprocessed `gpt2` saved by tuned-lens's own `TunedLens.save`, its
      translators randomised with a fixed seed (a zero translator would hide a broken one).
  __test__/fixtures/hub/spaces--AlignmentResearch--tuned-lens/{refs/main,snapshots/<rev>/lens/gpt2/...}
      The same files as tuned-lens's hub space holds them, in the HF cache layout (checked here by
      loading them back through tuned-lens's `load_lens_artifacts` with HF_HUB_OFFLINE=1).
  __test__/fixtures/golden/lens/lens.{json,safetensors}
      Unembed / LogitLens / TunedLens outputs on the unprocessed `gpt2`'s residual stream (a lens
      acts on HF hidden states: TL's unprocessed `resid_pre`), the Unembed of the other norm
      kinds (LNPre: processed gpt2; RMS / RMSPre: unprocessed / processed Yi), unembedding hashes,
      and numpy `array_str(precision=1)` + sha256 cases for tuned-lens's `tensor_hash`.
  __test__/fixtures/golden/lens/trajectory.{json,safetensors}
      PredictionTrajectory.from_lens_and_cache for one prompt and a batch of two, for both lenses,
      every residual component, `mask_input`, `slice_sequence`, and every statistic with its
      labels (sequence labels, label strings, hover entries) and min / max / units.

Tensors are float32 (int64 for token ids). Fixed seeds: re-running gives identical files.
"""
import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Importing make_fixtures sets HF_HUB_CACHE / HF_HUB_OFFLINE to the fixture hub first.
from make_fixtures import FIXTURES, GOLDEN, HUB, PROMPT, PROMPT2, load_tl, save_tensors, write_json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tuned_lens import load_artifacts  # noqa: E402
from tuned_lens.nn import LogitLens, TunedLens, TunedLensConfig, Unembed  # noqa: E402
from tuned_lens.plotting import PredictionTrajectory  # noqa: E402
from tuned_lens.utils import tensor_hash  # noqa: E402

MODEL = "gpt2"
OUT = GOLDEN / "lens"
LENS_DIR = FIXTURES / "lens" / MODEL
SPACE_ID = "AlignmentResearch/tuned-lens"
SPACE_REV = "7e1e5e1e5e1e5e1e5e1e5e1e5e1e5e1e5e1e5e1e"
SEQ = 6
COMPONENTS = ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"]


def versions():
    return {p: version(p) for p in ["torch", "transformer_lens", "transformers", "tuned-lens", "numpy"]}


def tokens(model, texts):
    return model.to_tokens(texts)[:, :SEQ]


def targets_of(model, ids):
    """tuned-lens's docs: the next token, then eos."""
    eos = torch.full(ids.shape[:-1] + (1,), model.tokenizer.eos_token_id)
    return torch.cat([ids[..., 1:], eos], dim=-1)


def anti_targets_of(ids):
    return (ids * 7 + 3) % 500


def randomise_translators(lens, resid_std):
    g = torch.Generator().manual_seed(4242)
    d = lens.config.d_model
    for t in lens.layer_translators:
        t.weight.data = torch.randn(d, d, generator=g) * 0.25
        t.bias.data = torch.randn(d, generator=g) * resid_std


# ----------------------------------------------------------------------------- artifacts
def write_artifacts(lens, unembed):
    if LENS_DIR.exists():
        shutil.rmtree(LENS_DIR)
    lens.save(LENS_DIR)
    space = HUB / ("spaces--" + SPACE_ID.replace("/", "--"))
    if space.exists():
        shutil.rmtree(space)
    snap = space / "snapshots" / SPACE_REV / "lens" / MODEL
    snap.mkdir(parents=True)
    for f in ["config.json", "params.pt"]:
        shutil.copy(LENS_DIR / f, snap / f)
    (space / "refs").mkdir()
    (space / "refs" / "main").write_text(SPACE_REV)
    # Both ways tuned-lens finds a lens: a folder, and the hub (offline, from the cache above).
    local = TunedLens.from_unembed_and_pretrained(unembed, str(LENS_DIR))
    hub = TunedLens.from_unembed_and_pretrained(unembed, MODEL)
    cfg_path, _ = load_artifacts.load_lens_artifacts(MODEL)
    assert Path(cfg_path).resolve().is_relative_to(space.resolve()), cfg_path
    for other in (local, hub):
        for a, b in zip(lens.layer_translators, other.layer_translators):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


# ----------------------------------------------------------------------------- hash cases
def hash_cases():
    g = torch.Generator().manual_seed(77)
    arrays = {
        "small": torch.randn(3, 4, generator=g) * 0.3,
        "wide": torch.randn(40, 30, generator=g) * 0.02,
        "summarised": torch.randn(200, 8, generator=g),
        "tiny_values": torch.tensor([[1e-5, 0.5, -0.25], [0.75, -0.05, 0.0]]),
        "big_values": torch.randn(5, 5, generator=g) * 1e9,
        "ties": torch.tensor([[0.25, 0.75, -0.25, 1.25], [2.5, -0.35, 0.05, 0.15]]),
        "negzero": torch.tensor([[-0.0, 0.0, -0.01, 0.01]]),
        "ints": torch.tensor([[1.0, 2.0, -3.0], [10.0, 200.0, 0.0]]),
        "mixed": torch.randn(1100, 1, generator=g) * 3,
        "long_rows": torch.randn(8, 16, generator=g) * 50,
    }
    cases, tensors = [], {}
    for name, t in arrays.items():
        a = t.float().numpy()
        tensors[f"hash.{name}"] = t.float()
        cases.append({"name": name, "array_str": np.array_str(a, precision=1), "hash": tensor_hash(a)})
    return cases, tensors


# ----------------------------------------------------------------------------- lens goldens
def lens_goldens(model, lens, logit_lens, ids):
    _, cache = model.run_with_cache(ids)
    t = {"tokens": ids}
    for name, lz in [("logit_lens", logit_lens), ("tuned_lens", lens)]:
        t[f"{name}.logits"] = torch.stack([lz.forward(cache["resid_pre", l], l) for l in range(model.cfg.n_layers)])
        t[f"{name}.hidden"] = torch.stack([lz.transform_hidden(cache["resid_pre", l], l) for l in range(model.cfg.n_layers)])
    for i, tr in enumerate(lens.layer_translators):
        t[f"translator.{i}.weight"] = tr.weight
        t[f"translator.{i}.bias"] = tr.bias
    return t, cache


def other_norms():
    """Unembed of each norm kind on one layer's residual stream (last position)."""
    out, meta = {}, []
    for model_id, mode in [("gpt2", "processed"), ("01-ai/Yi-6B", "unprocessed"), ("01-ai/Yi-6B", "processed")]:
        m = load_tl(model_id, mode)
        ids = tokens(m, PROMPT)
        _, cache = m.run_with_cache(ids)
        key = f"unembed.{model_id.replace('/', '__')}.{mode}"
        h = cache["resid_pre", 1]
        out[f"{key}.logits"] = Unembed(m).forward(h)[0, -1]
        out[f"{key}.tokens"] = ids
        meta.append({
            "key": key,
            "model_id": model_id,
            "mode": mode,
            "normalization_type": m.cfg.normalization_type,
            "unembed_hash": Unembed(m).unembedding_hash(),
        })
    return out, meta


# ----------------------------------------------------------------------------- trajectories
def label_json(labels, with_hover):
    if labels is None:
        return None
    out = {"label_strings": labels.label_strings.tolist()}
    if with_hover and labels.hover_over_entries is not None:
        out["hover_over_entries"] = labels.hover_over_entries.tolist()
    return out


def same_labels(a, b):
    return (a is None) == (b is None) and (a is None or (
        np.array_equal(a.label_strings, b.label_strings) and np.array_equal(a.hover_over_entries, b.hover_over_entries)))


PROB_LABELLED = ["entropy", "forward_kl", "cross_entropy", "max_probability", "rank"]
DELTA_LABELLED = ["kl_divergence", "js_divergence", "total_variation"]


def record_stats(traj, other, prefix, tensors, with_hover, label_kwargs=None):
    """Every statistic's numbers (in `tensors`) and facts; the labels once per kind: every
    probability-labelled statistic has the same labels (checked), and so has every delta-labelled one."""
    kw = label_kwargs or {}
    delta_kw = {k: v for k, v in kw.items() if k in ("topk", "max_entries_to_show")}
    stats = {
        "entropy": traj.entropy(**kw),
        "forward_kl": traj.forward_kl(**kw),
        "cross_entropy": traj.cross_entropy(**kw),
        "max_probability": traj.max_probability(**kw),
        "rank": traj.rank(**kw),
        "rank_show": traj.rank(show_ranks=True, **kw),
        "log_prob_diff": traj.log_prob_diff(),
        "log_prob_diff_delta": traj.log_prob_diff(delta=True),
        "kl_divergence": traj.kl_divergence(other, **delta_kw),
        "js_divergence": traj.js_divergence(other, **delta_kw),
        "total_variation": traj.total_variation(other, **delta_kw),
    }
    for group in (PROB_LABELLED, DELTA_LABELLED):
        for name in group[1:]:
            assert same_labels(stats[name].trajectory_labels, stats[group[0]].trajectory_labels), name
    out = {"stats": {}, "prob_labels": label_json(stats["entropy"].trajectory_labels, with_hover),
           "delta_labels": label_json(stats["kl_divergence"].trajectory_labels, with_hover),
           "rank_show_label_strings": stats["rank_show"].trajectory_labels.label_strings.tolist()}
    for name, s in stats.items():
        tensors[f"{prefix}.{name}"] = torch.from_numpy(np.asarray(s.stats, dtype=np.float32))
        out["stats"][name] = {
            "name": s.name,
            "units": s.units,
            "min": None if s.min is None else float(s.min),
            "max": None if s.max is None else float(s.max),
            "includes_output": s.includes_output,
            "layer_labels": s._layer_labels.tolist(),
            "sequence_labels": None if s.sequence_labels is None else s.sequence_labels.tolist(),
            "labels": "prob" if name in PROB_LABELLED or name == "rank_show" else "delta" if name in DELTA_LABELLED else None,
        }
        assert (s.trajectory_labels is None) == (out["stats"][name]["labels"] is None), name
    return out


def trajectory_goldens(model, lens, logit_lens):
    tensors, cases = {}, []

    def run(name, ids, lz, other_lz, component="resid_pre", mask_input=False, slc=None, label_kwargs=None, hover=False, keep_log_probs=False):
        logits, cache = model.run_with_cache(ids)
        targets, anti = targets_of(model, ids), anti_targets_of(ids)
        make = lambda l: PredictionTrajectory.from_lens_and_cache(  # noqa: E731
            lens=l, input_ids=ids, cache=cache, model_logits=logits, targets=targets, anti_targets=anti,
            residual_component=component, mask_input=mask_input,
        )
        traj, other = make(lz), make(other_lz)
        if slc is not None:
            traj, other = traj.slice_sequence(slice(*slc)), other.slice_sequence(slice(*slc))
        if keep_log_probs:
            tensors[f"{name}.log_probs"] = torch.from_numpy(traj.log_probs)
        tensors[f"{name}.tokens"] = ids
        tensors[f"{name}.targets"] = targets
        tensors[f"{name}.anti_targets"] = anti
        cases.append({
            "name": name,
            "lens": "tuned" if lz is lens else "logit",
            "other": "tuned" if other_lz is lens else "logit",
            "residual_component": component,
            "mask_input": mask_input,
            "slice": slc,
            "label_kwargs": label_kwargs,
            "num_layers": traj.num_layers,
            "num_tokens": traj.num_tokens,
            "vocab_size": traj.vocab_size,
            **record_stats(traj, other, name, tensors, hover, label_kwargs),
        })

    one = tokens(model, PROMPT)
    two = tokens(model, [PROMPT, PROMPT2])
    run("tuned_single", one, lens, logit_lens, hover=True, keep_log_probs=True)
    run("logit_single", one, logit_lens, lens)
    run("tuned_batch", two, lens, logit_lens, hover=True)
    for c in COMPONENTS[1:]:
        run(f"tuned_{c}", one, lens, logit_lens, component=c)
    run("tuned_masked", one, lens, logit_lens, mask_input=True)
    run("tuned_sliced", two, lens, logit_lens, slc=[1, 4], hover=True)
    run("tuned_sliced_neg", one, lens, logit_lens, slc=[-3, None])
    run("tuned_label_options", two, lens, logit_lens, label_kwargs={"topk": 4, "max_entries_to_show": 1, "min_prob": 0.5}, hover=True)
    return tensors, cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = load_tl(MODEL, "unprocessed")
    unembed = Unembed(model)
    ids = tokens(model, PROMPT)
    _, cache = model.run_with_cache(ids)
    resid_std = float(cache["resid_pre", 1].std())
    # TunedLens.from_model reads an HF model's config: with a TL model the config is built here.
    cfg = TunedLensConfig(base_model_name_or_path=MODEL, d_model=model.cfg.d_model, num_hidden_layers=model.cfg.n_layers)
    lens = TunedLens(unembed, cfg)
    randomise_translators(lens, resid_std)
    logit_lens = LogitLens(unembed)
    write_artifacts(lens, unembed)

    with torch.no_grad():
        t, _ = lens_goldens(model, lens, logit_lens, ids)
        norms, norm_meta = other_norms()
        hcases, htensors = hash_cases()
        save_tensors(OUT / "lens.safetensors", {**t, **norms, **htensors})
        write_json(OUT / "lens.json", {
            "model_id": MODEL,
            "seq": SEQ,
            "config": json.loads((LENS_DIR / "config.json").read_text()),
            "unembed_hash": unembed.unembedding_hash(),
            "params_keys": list(torch.load(LENS_DIR / "params.pt", weights_only=True).keys()),
            "other_norms": norm_meta,
            "hash_cases": hcases,
            "versions": versions(),
        })
        tt, cases = trajectory_goldens(model, lens, logit_lens)
        save_tensors(OUT / "trajectory.safetensors", tt)
        # One case per line: indenting every label list would triple the file.
        body = ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
        head = {"model_id": MODEL, "vocab_size": model.tokenizer.vocab_size, "versions": versions()}
        (OUT / "trajectory.json").write_text(json.dumps(head)[:-1] + ', "cases": [\n' + body + "\n]}\n", encoding="utf-8")
    for f in sorted(OUT.iterdir()) + sorted(LENS_DIR.iterdir()):
        print(f"{f.relative_to(FIXTURES)}: {f.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
