#!/usr/bin/env python
"""Config-variant sweep of the decoder families against TL 2.16.1 (a dev tool, not a test).

Usage:  /work/tlref/bin/python scripts/reference/sweep_families.py OUT_DIR [FILTER ...]
        node --import tsx scripts/reference/sweep_compare.ts OUT_DIR [FILTER ...]

For every variant in VARIANTS (a family of make_family_fixtures.py with some HF config fields
changed; FILTER substrings select variants by name), writes OUT_DIR/{variant}/:
  hub/        a tiny random checkpoint in the HF hub-cache layout under the family's official id
              (make_family_fixtures' tokenizer and checkpoint writers, the family's seed)
  tl.safetensors  tokens (single prompt, right- and left-padded batch), processed and
              unprocessed logits of each, processed logits of the single prompt with each of
              fold_ln / center_writing_weights / center_unembed / fold_value_biases off, the unprocessed run_with_cache of the single prompt
              (every hook, "cache.{name}"), the processed run_with_cache with the use_* flags
              (and ungrouped K/V where grouped) on ("flags.{name}") and with use_attn_in on
              ("attn_in.{name}"), and the incl_bwd cache of the loss ("bwd.{key}"), and greedy generate of NEW tokens (KV cache on) from
              each prompt alone ("gen{i}"; "gen0.nokv" without it)
  tl.json     the variant, TL's cfg of both loaders, hook names, TL-unprocessed-vs-HF max |logit
              difference| (what TL ignores of the config shows here), or the error TL raised.
sweep_compare.ts loads the same checkpoints with the library and reports max |diff| per variant.
"""
import json
import os
import shutil
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import make_family_fixtures as mff  # sets up make_fixtures' offline HF environment first
from sweep_main import run_sweep, write_variant
import gemma_fixtures
import mixtral_fixtures
import qwen_fixtures
import santacoder_fixtures
import huggingface_hub.constants as hub_constants
import torch
import transformers.utils.hub as tf_hub
from transformers import AutoModelForCausalLM, PretrainedConfig

mf = mff.mf
PROMPTS = [mf.PROMPT, mf.PROMPT2]
NEW = 8
CONFIG_MODULES = (mff, gemma_fixtures, mixtral_fixtures, qwen_fixtures, santacoder_fixtures)

NEOX, YI, MISTRAL, QWEN2, QWEN3 = ("EleutherAI/pythia-70m", "01-ai/Yi-6B", "mistralai/Mistral-7B-v0.1",
                                   "Qwen/Qwen2-0.5B", "Qwen/Qwen3-0.6B")
NEO, GPTJ, OPT, PHI, PHI3 = ("EleutherAI/gpt-neo-125M", "EleutherAI/gpt-j-6B", "facebook/opt-125m",
                             "microsoft/phi-2", "microsoft/phi-4")
GEMMA, GEMMA2, BLOOM, MIXTRAL = "google/gemma-2b", "google/gemma-2-2b", "bigscience/bloom-560m", "mistralai/Mixtral-8x7B-v0.1"
QWEN1, SANTA = "Qwen/Qwen-1_8B", "bigcode/santacoder"
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}

# (variant name, family model id, HF config overrides); "gpt2" variants use make_fixtures' GPT-2.
VARIANTS = [
    ("neox-rotary0.25", NEOX, {"rotary_pct": 0.25}),
    ("neox-rotary1.0", NEOX, {"rotary_pct": 1.0}),
    ("neox-sequential", NEOX, {"use_parallel_residual": False}),
    ("neox-base500", NEOX, {"rotary_emb_base": 500}),
    ("neox-nobias", NEOX, {"attention_bias": False}),
    ("neox-tied", NEOX, {"tie_word_embeddings": True}),
    ("neox-relu-eps", NEOX, {"hidden_act": "relu", "layer_norm_eps": 1e-3}),
    ("yi-mha", YI, {"num_key_value_heads": 4}),
    ("yi-gqa4", YI, {"num_key_value_heads": 1}),
    ("yi-theta", YI, {"rope_theta": 500.0}),
    ("yi-linear", YI, {"rope_scaling": {"type": "linear", "factor": 2.0}}),
    ("yi-llama3", YI, {"rope_scaling": LLAMA3_ROPE}),
    ("yi-attnbias", YI, {"attention_bias": True}),
    ("yi-mlpbias", YI, {"mlp_bias": True}),
    ("yi-tied", YI, {"tie_word_embeddings": True}),
    ("yi-headdim", YI, {"head_dim": 12}),
    ("mistral-mha-window3", MISTRAL, {"num_key_value_heads": 4, "sliding_window": 3}),
    ("mistral-nowindow", MISTRAL, {"sliding_window": None}),
    ("mistral-headdim", MISTRAL, {"head_dim": 12}),
    ("qwen2-window", QWEN2, {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}),
    ("qwen2-untied-mha", QWEN2, {"tie_word_embeddings": False, "num_key_value_heads": 4}),
    ("qwen2-gqa4", QWEN2, {"num_key_value_heads": 1}),
    ("qwen3-untied-mha", QWEN3, {"tie_word_embeddings": False, "num_key_value_heads": 4}),
    ("qwen3-headdim6", QWEN3, {"head_dim": 6, "num_key_value_heads": 1}),
    ("qwen3-bias", QWEN3, {"attention_bias": True}),
    ("neo-window2", NEO, {"window_size": 2}),
    ("neo-local-only", NEO, {"attention_types": [[["local"], 3]]}),
    ("neo-global-only", NEO, {"attention_types": [[["global"], 3]]}),
    ("neo-relu-inner", NEO, {"activation_function": "relu", "intermediate_size": 64}),
    ("gptj-rot8", GPTJ, {"rotary_dim": 8}),
    ("gptj-rot2", GPTJ, {"rotary_dim": 2}),
    ("gptj-rotnone", GPTJ, {"rotary_dim": None}),
    ("gptj-tied-eps", GPTJ, {"tie_word_embeddings": True, "layer_norm_epsilon": 1e-3}),
    ("opt-postln", OPT, {"do_layer_norm_before": False}),
    ("opt-proj", OPT, {"word_embed_proj_dim": 16}),
    ("opt-nobias", OPT, {"enable_bias": False}),
    ("opt-untied-gelu", OPT, {"tie_word_embeddings": False, "activation_function": "gelu"}),
    ("phi-rot0.25", PHI, {"partial_rotary_factor": 0.25}),
    ("phi-rot1", PHI, {"partial_rotary_factor": 1.0}),
    ("phi-qkln", PHI, {"qk_layernorm": True}),
    ("phi-gqa", PHI, {"num_key_value_heads": 2}),
    ("phi3-rot0.5", PHI3, {"partial_rotary_factor": 0.5}),
    ("phi3-mha", PHI3, {"num_key_value_heads": 4}),
    ("phi3-longrope", PHI3, {"rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.3],
                                              "long_factor": [2.0, 2.1, 2.2, 2.3]},
                             "original_max_position_embeddings": 16}),
    ("phi3-window", PHI3, {"sliding_window": 4}),
    ("gemma-mha-headdim", GEMMA, {"num_key_value_heads": 4, "head_dim": 12}),
    ("gemma2-qscalar-window", GEMMA2, {"query_pre_attn_scalar": 8, "sliding_window": 3}),
    ("gemma2-nocaps", GEMMA2, {"attn_logit_softcapping": None, "final_logit_softcapping": None}),
    ("gemma2-headdim", GEMMA2, {"head_dim": 12, "query_pre_attn_scalar": 12}),
    ("bloom-h2", BLOOM, {"n_head": 2}),
    ("bloom-h3", BLOOM, {"n_head": 3, "hidden_size": 36}),
    ("bloom-h6", BLOOM, {"n_head": 6, "hidden_size": 36}),
    ("bloom-h8", BLOOM, {"n_head": 8}),
    ("mixtral-e8-top1", MIXTRAL, {"num_local_experts": 8, "num_experts_per_tok": 1}),
    ("mixtral-mha-window", MIXTRAL, {"num_key_value_heads": 4, "sliding_window": 4}),
    ("mixtral-gqa4-top3", MIXTRAL, {"num_key_value_heads": 1, "num_experts_per_tok": 3}),
    ("mixtral-e4-top1", MIXTRAL, {"num_experts_per_tok": 1}),
    ("mixtral-e8-top2", MIXTRAL, {"num_local_experts": 8}),
    ("mixtral-tied", MIXTRAL, {"tie_word_embeddings": True}),
    ("mistral-tied", MISTRAL, {"tie_word_embeddings": True}),
    ("mistral-theta-frac", MISTRAL, {"rope_theta": 1234.5}),
    ("qwen2-theta-frac", QWEN2, {"rope_theta": 1234.5}),
    ("neo-untied", NEO, {"tie_word_embeddings": False}),
    ("phi-tied", PHI, {"tie_word_embeddings": True}),
    ("phi3-tied", PHI3, {"tie_word_embeddings": True}),
    ("bloom-untied", BLOOM, {"tie_word_embeddings": False}),
    ("bloom-resid-post-ln", BLOOM, {"apply_residual_connection_post_layernorm": True}),
    ("gemma-untied", GEMMA, {"tie_word_embeddings": False}),
    ("gemma2-untied", GEMMA2, {"tie_word_embeddings": False}),
    ("neox-rotary0.4375", NEOX, {"rotary_pct": 0.4375}),
    ("neox-gelu-fast", NEOX, {"hidden_act": "gelu_fast"}),
    ("neox-gelu-tanh", NEOX, {"hidden_act": "gelu_pytorch_tanh"}),
    ("neox-quick-gelu", NEOX, {"hidden_act": "quick_gelu"}),
    ("yi-gelu-new", YI, {"hidden_act": "gelu_new"}),
    ("phi-relu", PHI, {"hidden_act": "relu"}),
    ("gpt2-silu", "gpt2", {"activation_function": "silu"}),
    ("gpt2-swish", "gpt2", {"activation_function": "swish"}),
    ("gpt2-untied", "gpt2", {"tie_word_embeddings": False}),
    ("gpt2-no-n_ctx", "gpt2", {"_drop": ["n_ctx"]}),
    ("gpt2-noscale", "gpt2", {"scale_attn_weights": False}),
    ("qwen3-theta-frac", QWEN3, {"rope_theta": 1234.5}),
    ("qwen1-noscale", QWEN1, {"scale_attn_weights": False}),
    ("qwen1-rotary-half", QWEN1, {"rotary_pct": 0.5}),
    ("qwen1-base", QWEN1, {"rotary_emb_base": 500}),
    ("santa-noinv", SANTA, {"scale_attn_by_inverse_layer_idx": False}),
    ("santa-noscale", SANTA, {"scale_attn_weights": False}),
    ("yi-tok-nobos", YI, {"_tok": {"config": {"add_bos_token": False}, "bos_template": None, "saved_empty": []}}),
    ("opt-tok-nobos", OPT, {"_tok": {"config": {"add_bos_token": False}, "bos_template": None, "saved_empty": []}}),
    ("gpt2-bin", "gpt2", {"_bin": True}),
    ("yi-bf16", YI, {"_dtype": "bfloat16"}),
    ("qwen2-bf16-bin", QWEN2, {"_dtype": "bfloat16", "_bin": True}),
    ("neox-fp16", NEOX, {"_dtype": "float16"}),
    ("gemma2-bf16", GEMMA2, {"_dtype": "bfloat16"}),
    ("opt-bin", OPT, {"_bin": True}),
    ("mixtral-bf16", MIXTRAL, {"_dtype": "bfloat16"}),
    ("gpt2-ninner", "gpt2", {"n_inner": 64}),
    ("gpt2-relu", "gpt2", {"activation_function": "relu"}),
    ("gpt2-gelu", "gpt2", {"activation_function": "gelu"}),
    ("gpt2-inv-idx", "gpt2", {"scale_attn_by_inverse_layer_idx": True}),
    ("gpt2-reorder", "gpt2", {"reorder_and_upcast_attn": True}),
    ("gpt2-eps", "gpt2", {"layer_norm_epsilon": 1e-3}),
]


# ----------------------------------------------------------------------------- checkpoints
STORAGE = ("_dtype", "_bin", "_drop", "_tok")


def config_kwargs(fam):
    """(config class, the keyword arguments fam.config() passes it): every PretrainedConfig
    subclass the fixture modules name is swapped for a recorder while fam.config() runs."""
    saved = {}
    for mod in CONFIG_MODULES:
        for name, obj in vars(mod).items():
            if isinstance(obj, type) and issubclass(obj, PretrainedConfig) and obj is not PretrainedConfig:
                saved[(mod, name)] = obj
                setattr(mod, name, lambda _cls=obj, **kw: (_cls, kw))
    try:
        return fam.config()
    finally:
        for (mod, name), obj in saved.items():
            setattr(mod, name, obj)


def gpt2_family():
    """make_fixtures' GPT-2 (3 layers) as a Family, so one code path writes every checkpoint."""
    def config():
        from transformers import GPT2Config
        return GPT2Config(vocab_size=mf.VOCAB_SIZE, n_positions=mf.N_CTX, n_ctx=mf.N_CTX, n_embd=32,
                          n_layer=3, n_head=4, activation_function="gelu_new", layer_norm_epsilon=1e-5,
                          tie_word_embeddings=True, bos_token_id=mf.VOCAB_SIZE - 1,
                          eos_token_id=mf.VOCAB_SIZE - 1, architectures=["GPT2LMHeadModel"])
    return mff.Family(model_id="gpt2", architecture="GPT2LMHeadModel", seed=1001, config=config,
                      tokenizer=mff.NEO_TOKENIZER, embedding_params=("transformer.wte.weight", "transformer.wpe.weight"),
                      expect_cfg={}, conv1d=True)


def family(model_id):
    if model_id == "gpt2":
        return gpt2_family()
    return next(f for f in mff.FAMILIES if f.model_id == model_id)


def use_hub(hub):
    """Points make_fixtures, huggingface_hub and transformers at `hub` (all read it per call)."""
    shutil.rmtree(hub, ignore_errors=True)
    hub.mkdir(parents=True)
    mf.HUB = hub
    mf.GOLDEN = hub.parent / "golden"  # never the committed goldens
    hub_constants.HF_HUB_CACHE = str(hub)
    tf_hub.TRANSFORMERS_CACHE = str(hub)
    os.environ["HF_HUB_CACHE"] = str(hub)


def write_variant_checkpoint(fam, overrides):
    """The checkpoint of `fam` with `overrides` applied to its HF config; the keys STORAGE names
    choose how it is saved instead (dtype of the weights, pickle instead of safetensors),
    "_drop" lists config.json keys to remove and "_tok" replaces TokenizerSpec fields ("config"
    entries are merged into the family's tokenizer_config.json)."""
    storage = {k: overrides[k] for k in STORAGE if k in overrides}
    overrides = {k: v for k, v in overrides.items() if k not in STORAGE}
    if fam.model_id == "gpt2":
        cfg = fam.config()
        for k, v in overrides.items():
            setattr(cfg, k, v)
    else:
        cls, kw = config_kwargs(fam)
        cfg = cls(**{**kw, **overrides})
    repo, snap = mf.hub_repo_dir(fam.model_id), mf.snapshot_dir(fam.model_id)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(mf.revision(fam.model_id))
    model = mff.build_hf_model(replace(fam, config=lambda: cfg))
    model.to(getattr(torch, storage.get("_dtype", "float32")))
    model.save_pretrained(str(snap), safe_serialization=not storage.get("_bin", False))
    tok = fam.tokenizer
    if storage.get("_tok"):
        fields = dict(storage["_tok"])
        tok = replace(tok, **{**fields, "config": {**tok.config, **fields.get("config", {})}})
    mff.write_tokenizer_files(tok, mff.build_tokenizer(tok), snap)
    if storage.get("_drop"):
        j = json.loads((snap / "config.json").read_text())
        mf.write_json(snap / "config.json", {k: v for k, v in j.items() if k not in storage["_drop"]})
    return cfg


# ----------------------------------------------------------------------------- TL runs
def tl_generate(model, prompt, kv=True):
    return model.generate(prompt, max_new_tokens=NEW, do_sample=False, stop_at_eos=False,
                          use_past_kv_cache=kv, return_type="tokens", verbose=False)


def processing_off(model_id, switch):
    """from_pretrained with `switch` off. Without fold_ln, TL's own loader: mixtral_fixtures'
    correction (folding the norm weights TL drops) must not apply where TL folds nothing."""
    if switch == "fold_ln":
        return mf.HookedTransformer.from_pretrained(model_id, device="cpu", fold_ln=False)
    return mf.load_tl(model_id, "processed", **{switch: False})


def run_mode(fam, mode, t, meta):
    model = mf.load_tl(fam.model_id, mode)
    meta[f"{mode}.cfg"] = mf.cfg_json(model)
    tokens = model.to_tokens(PROMPTS[0])
    t["tokens.single"] = tokens
    t["tokens.batch"] = model.to_tokens(PROMPTS)
    t["tokens.left"] = model.to_tokens(PROMPTS, padding_side="left")
    t[f"{mode}.logits.single"] = model(tokens)
    t[f"{mode}.logits.batch"] = model(PROMPTS)
    t[f"{mode}.logits.left"] = model(PROMPTS, padding_side="left")
    if mode == "unprocessed":
        _, cache = model.run_with_cache(tokens)
        meta["hook_names"] = list(cache.keys())
        for name in cache.keys():
            t[f"cache.{name}"] = cache[name]
    else:
        for i, p in enumerate(PROMPTS):
            t[f"gen{i}"] = tl_generate(model, p)
        t["gen0.nokv"] = tl_generate(model, PROMPTS[0], kv=False)
        for switch in mf.OPTION_SWITCHES:  # from_pretrained with one processing step off
            try:
                t[f"{switch}_off.logits.single"] = processing_off(fam.model_id, switch)(tokens)
            except AssertionError as e:  # mixtral_fixtures' check of its correction
                meta.setdefault("option_errors", {})[switch] = str(e)
        # The use_* flags (and ungrouped K/V where grouped) on this model, after its generate
        # runs; use_attn_in on a fresh one.
        grouped = ["set_ungroup_grouped_query_attention"] if model.cfg.n_key_value_heads is not None else []
        run_flags(model, tokens, t, meta, "flags", list(mff.FLAG_SETTERS) + grouped)
        run_flags(mf.load_tl(fam.model_id, mode), tokens, t, meta, "attn_in", ["set_use_attn_in"])
        run_backward(fam.model_id, tokens, t, meta)
    return model


def run_flags(model, tokens, t, meta, stem, setters):
    """`model`'s cache with TL's `setters` on, as "{stem}.{name}" (the hook names and setters
    under "{stem}_hook_names" / "{stem}_setters", or what TL raised under "{stem}_error")."""
    meta[f"{stem}_setters"] = setters
    try:
        for setter in setters:
            getattr(model, setter)(True)
        _, cache = model.run_with_cache(tokens)
    except Exception as e:
        meta[f"{stem}_error"] = f"{type(e).__name__}: {e}"
        return
    meta[f"{stem}_hook_names"] = list(cache.keys())
    for name in cache.keys():
        t[f"{stem}.{name}"] = cache[name]


def run_backward(model_id, tokens, t, meta):
    """A fresh processed model's run_with_cache(incl_bwd=True) of the loss: every activation and
    `*_grad`, as "bwd.{key}" (keys in TL's order under "bwd_keys"), and the loss."""
    with torch.enable_grad():
        model = mf.load_tl(model_id, "processed")
        got, info = mff.mb.golden_incl_bwd(model, tokens)
        model.zero_grad(set_to_none=True)
    meta["bwd_keys"] = info["keys"]
    t["bwd.loss"] = got["loss"]
    for k in info["keys"]:
        t[f"bwd.{k}"] = got[k]


def sweep_variant(out, name, model_id, overrides):
    root = out / name
    meta = {"variant": name, "model_id": model_id, "overrides": overrides, "prompts": PROMPTS}
    use_hub(root / "hub")
    fam = family(model_id)
    try:
        cfg = write_variant_checkpoint(fam, overrides)
    except Exception as e:  # HF refuses the config itself: nothing to compare
        meta["hf_error"] = f"{type(e).__name__}: {e}"
        mf.write_json(root / "tl.json", meta)
        print(f"[{name}] HF refuses: {meta['hf_error']}")
        return
    meta["hf_config"] = cfg.to_dict()
    t = {}
    try:
        for mode in mf.MODES:
            model = run_mode(fam, mode, t, meta)
    except Exception as e:
        meta["tl_error"] = f"{type(e).__name__}: {e}"
        meta["tl_traceback"] = traceback.format_exc(limit=-3)
        print(f"[{name}] TL raises: {meta['tl_error']}")
    else:
        try:
            remote = {"trust_remote_code": True} if fam.hf_model_class is not None else {}
            hf = AutoModelForCausalLM.from_pretrained(model_id, attn_implementation="eager", **remote).eval()
            if fam.hf_prepare and "sliding_window" not in overrides:
                fam.hf_prepare(hf)
            diff = (hf(t["tokens.single"]).logits - t["unprocessed.logits.single"]).abs().max().item()
        except Exception as e:  # HF's own forward fails on the config (GPT-J's rotary_dim None)
            diff = f"HF raises {type(e).__name__}: {e}"
        meta["tl_unprocessed_vs_hf"] = diff
        print(f"[{name}] TL ok; TL unprocessed vs HF logits max |diff| {diff}; {len(t)} tensors")
    write_variant(mf, root, meta, t)


if __name__ == "__main__":
    sys.exit(run_sweep(VARIANTS, sweep_variant))
