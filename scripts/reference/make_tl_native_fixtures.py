#!/usr/bin/env python
"""Tiny random checkpoints of TL's own models (NeelNanda's toy / SoLU / GELU models, Redwood's
attn-2l, Othello-GPT) in the HF cache layout + TransformerLens goldens.

Usage:  python scripts/reference/make_tl_native_fixtures.py   (independent of the other fixture
        scripts; removes and rewrites only its own models' folders)

For every model in MODELS (under its real TL official id) writes, deterministically:
  __test__/fixtures/hub/models--{org}--{name}/{refs/main, snapshots/{rev}/...}
      config.json in NeelNanda's field names (what `convert_neel_model_config` reads) with tiny
      dims and `tokenizer_name: null` (no tokenizer: the goldens run on token ids), and the
      state dict as TL's repos hold it: `model_final.pth` (torch.save of a dict of tensors),
      plus `checkpoints/*_{N}.pth` training checkpoints where the model has them. The old SoLU
      layout (`_old` names: "norm" keys, left-facing weights) and minGPT's names (config
      "architecture": "mingpt") are written as the inverse of TL's conversions.
  __test__/fixtures/golden/{slug}/{processed,unprocessed}.{safetensors,json}
      logits, loss, loss per token and every hook's activation of `run_with_cache` on TOKENS
      (float32; TL's cfg and hook names in the JSON); `checkpoint.*` (processed, checkpoint
      index 0) for models with checkpoints.

Offline shim (documented): TL lists a NeelNanda/ArthurConmy/Baidicoot repo's files with
`HfApi().list_repo_files` (to find `*final.pth` and the checkpoints), which needs the network even
with HF_HUB_OFFLINE=1. This script replaces that one method with a listing of the cached
snapshot folder (relative paths, sorted, as the hub API returns them); every file is still read
by TL through `hf_hub_download` from the cache (TL's `download_file_from_hf` is only given the
fixture hub as its cache_dir, which TL bound to HF_HOME/hub at import).
"""
import json
import shutil
import sys
from dataclasses import dataclass, field

import make_fixtures as mf  # sets the offline HF environment before huggingface_hub loads
import huggingface_hub
import torch
import transformer_lens.utils as tl_utils
from transformer_lens import HookedTransformer, HookedTransformerConfig

torch.set_grad_enabled(False)

D_VOCAB = 48
N_CTX = 16
TOKENS = torch.tensor([[3, 17, 5, 40, 22, 9, 31, 0, 12, 47], [1, 8, 8, 30, 2, 44, 19, 6, 25, 13]])


def list_snapshot_files(self, repo_id, *args, **kwargs):
    """HfApi.list_repo_files from the cache (see the module docstring)."""
    snap = mf.snapshot_dir(repo_id)
    return sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())


huggingface_hub.HfApi.list_repo_files = list_snapshot_files
# TL's download_file_from_hf defaults cache_dir to HF_HOME/hub, bound when TL was imported (before
# make_fixtures' HF_HUB_CACHE counts for it): point it at the fixture hub.
_download = tl_utils.download_file_from_hf
tl_utils.download_file_from_hf = lambda repo, name, **kw: _download(repo, name, **{**kw, "cache_dir": str(mf.HUB)})


@dataclass(frozen=True)
class Native:
    model_id: str
    seed: int
    config: dict  # config.json as the repo holds it (NeelNanda's names)
    layout: str = "tl"  # "tl", "solu_old" or "mingpt": how the .pth names and lays out tensors
    checkpoints: tuple = ()  # checkpoint labels (files checkpoints/{stem}_{N}.pth)
    final_name: str = "model_final.pth"


def neel(n_layers, act_fn, attn_only=False, **extra):
    return {"d_model": 16, "n_layers": n_layers, "d_mlp": 32, "d_head": 8, "n_heads": 2, "n_ctx": N_CTX,
            "d_vocab": D_VOCAB, "tokenizer_name": None, "act_fn": act_fn, "attn_only": attn_only,
            "normalization": "LN", **extra}


MODELS = [
    Native("NeelNanda/Attn_Only_2L512W_C4_Code", 3001, neel(2, "solu_ln", attn_only=True),
           checkpoints=(1000, 5000, 20000)),
    Native("NeelNanda/GELU_2L512W_C4_Code", 3002, neel(2, "gelu")),
    Native("NeelNanda/SoLU_2L512W_C4_Code", 3003, neel(2, "solu_ln")),
    Native("NeelNanda/Attn-Only-2L512W-Shortformer-6B-big-lr", 3004,
           neel(2, "solu_ln", attn_only=True, shortformer_pos=True)),
    Native("NeelNanda/SoLU_1L_v9_old", 3005, neel(1, "solu_ln"), layout="solu_old",
           final_name="SoLU_1L_v9_final.pth"),
    Native("ArthurConmy/redwood_attn_2l", 3006, {**neel(2, "relu", attn_only=True), "normalization_type": "LN"}),
    Native("Baidicoot/Othello-GPT-Transformer-Lens", 3007,
           {**neel(2, "gelu"), "architecture": "mingpt"}, layout="mingpt"),
]


def tl_config(native):
    """The HookedTransformerConfig TL builds from config.json (convert_neel_model_config)."""
    c = native.config
    pos = "shortformer" if c.get("shortformer_pos") else "standard"
    arch = c.get("architecture", "neel" if "_old" not in native.model_id else "neel-solu-old")
    return HookedTransformerConfig(
        d_model=c["d_model"], n_layers=c["n_layers"], d_mlp=c["d_mlp"], d_head=c["d_head"],
        n_heads=c["n_heads"], n_ctx=c["n_ctx"], d_vocab=c["d_vocab"], act_fn=c["act_fn"],
        attn_only=c["attn_only"], normalization_type=c.get("normalization", c.get("normalization_type")),
        positional_embedding_type=pos, original_architecture=arch, seed=native.seed,
    )


def random_state_dict(native, seed):
    """A TL state dict of the model with every parameter random (1-D ones too: norm weights not 1,
    biases not 0), buffers as TL's state_dict() has them."""
    torch.manual_seed(seed)
    model = HookedTransformer(tl_config(native))
    sd = model.state_dict()
    for k, v in sd.items():
        if v.is_floating_point() and not k.endswith("IGNORE"):
            scale = 0.5 if v.dim() > 1 else 0.2
            base = 1.0 if (k.endswith(".w") and v.dim() == 1) else 0.0
            sd[k] = base + scale * torch.randn_like(v)
    return sd


def to_solu_old(sd):
    """The inverse of TL's convert_neel_solu_old_weights for n_layers <= 6: "ln" names back to
    "norm" (ln_final -> norm), every W_ (W_pos too) left-facing."""
    out = {}
    for k, v in sd.items():
        if "W_" in k:
            v = v.transpose(-2, -1).contiguous()
        k = k.replace("ln_final.", "ln.").replace("ln", "norm")
        out[k] = v
    return out


def to_mingpt(sd, cfg):
    """The inverse of TL's convert_mingpt_weights (minGPT names, nn.Linear [out, in] layouts)."""
    h = cfg.n_heads
    out = {"tok_emb.weight": sd["embed.W_E"], "pos_emb": sd["pos_embed.W_pos"].unsqueeze(0),
           "head.weight": sd["unembed.W_U"].T.contiguous(), "ln_f.weight": sd["ln_final.w"],
           "ln_f.bias": sd["ln_final.b"]}
    for l in range(cfg.n_layers):
        p = f"blocks.{l}"
        for n in ("1", "2"):
            out[f"{p}.ln{n}.weight"] = sd[f"{p}.ln{n}.w"]
            out[f"{p}.ln{n}.bias"] = sd[f"{p}.ln{n}.b"]
        for name, key in (("query", "Q"), ("key", "K"), ("value", "V")):
            w = sd[f"{p}.attn.W_{key}"]  # [h, d_model, d_head] -> [(h d_head), d_model]
            out[f"{p}.attn.{name}.weight"] = w.permute(0, 2, 1).reshape(h * cfg.d_head, cfg.d_model).contiguous()
            out[f"{p}.attn.{name}.bias"] = sd[f"{p}.attn.b_{key}"].reshape(-1)
        out[f"{p}.attn.proj.weight"] = sd[f"{p}.attn.W_O"].reshape(h * cfg.d_head, cfg.d_model).T.contiguous()
        out[f"{p}.attn.proj.bias"] = sd[f"{p}.attn.b_O"]
        out[f"{p}.attn.mask"] = torch.tril(torch.ones(1, 1, cfg.n_ctx, cfg.n_ctx))
        out[f"{p}.mlp.0.weight"] = sd[f"{p}.mlp.W_in"].T.contiguous()
        out[f"{p}.mlp.0.bias"] = sd[f"{p}.mlp.b_in"]
        out[f"{p}.mlp.2.weight"] = sd[f"{p}.mlp.W_out"].T.contiguous()
        out[f"{p}.mlp.2.bias"] = sd[f"{p}.mlp.b_out"]
    return out  # no head bias: TL fills unembed.b_U with zeros (fill_missing_keys)


def stored(native, sd):
    if native.layout == "solu_old":
        return to_solu_old(sd)
    if native.layout == "mingpt":
        return to_mingpt(sd, tl_config(native))
    return sd


def write_checkpoint(native):
    snap = mf.snapshot_dir(native.model_id)
    snap.mkdir(parents=True)
    refs = mf.hub_repo_dir(native.model_id) / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(mf.revision(native.model_id))
    mf.write_json(snap / "config.json", native.config)
    torch.save(stored(native, random_state_dict(native, native.seed)), snap / native.final_name)
    if native.checkpoints:
        (snap / "checkpoints").mkdir()
        stem = native.model_id.split("/")[-1]
        for i, n in enumerate(native.checkpoints):
            torch.save(stored(native, random_state_dict(native, native.seed + 100 + i)), snap / "checkpoints" / f"{stem}_{n}.pth")


def golden(native, mode, stem=None, **kwargs):
    model = mf.load_tl(native.model_id, mode, **kwargs)
    logits, cache = model.run_with_cache(TOKENS)
    t = {"tokens": TOKENS, "logits": logits,
         "loss": model(TOKENS, return_type="loss"),
         "loss_per_token": model(TOKENS, return_type="loss", loss_per_token=True)}
    hook_names = list(cache.keys())
    for name in hook_names:
        t[f"cache.{name}"] = cache[name]
    out_dir = mf.GOLDEN / mf.slug(native.model_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or mode
    converted = mf.save_tensors(out_dir / f"{stem}.safetensors", t)
    mf.write_json(out_dir / f"{stem}.json", {
        "model_id": native.model_id,
        "loader": "from_pretrained" if mode == "processed" else "from_pretrained_no_processing",
        "options": kwargs,
        "hook_names": hook_names,
        "all_hook_names": list(model.hook_dict.keys()),
        "cfg": mf.cfg_json(model),
        "loss": t["loss"].item(),
        "state_dict_keys": [k for k in model.state_dict().keys() if mf.is_weight_key(k)],
        "converted": converted,
        "versions": mf.versions(),
    })


def main():
    only = set(sys.argv[1:])
    models = [m for m in MODELS if not only or m.model_id in only]
    for native in models:
        shutil.rmtree(mf.hub_repo_dir(native.model_id), ignore_errors=True)
        shutil.rmtree(mf.GOLDEN / mf.slug(native.model_id), ignore_errors=True)
        write_checkpoint(native)
        for mode in mf.MODES:
            golden(native, mode)
        if native.checkpoints:
            golden(native, "processed", stem="checkpoint", checkpoint_index=1)
        print(native.model_id, "ok", mf.tree_size(mf.hub_repo_dir(native.model_id)),
              mf.tree_size(mf.GOLDEN / mf.slug(native.model_id)))


if __name__ == "__main__":
    main()
