"""Gemma / Gemma 2 entries of make_family_fixtures.py, and the one patch of TL they need.

TL 2.16.1 never reads config.json for names containing "gemma": `convert_hf_model_config`
returns hard-coded real-size dicts for `google/gemma-*` (d_vocab 256000, d_model 2048..4608),
and no other id reaches the Gemma architectures (a local folder or another hub id whose
config.json says GemmaForCausalLM has no branch there and fails). A real-width checkpoint is
gigabytes (the embedding alone is 256000 x 2048 floats), so the fixtures are reduced Gemmas
under the official ids, and this module patches `loading_from_pretrained.convert_hf_model_config`
for those ids only: it takes TL's own hard-coded dict for the id and replaces the sizes (and the
fields derived from them) with the reduced checkpoint's config.json values, by the rules the
port's `families/gemma.rs` `config()` applies to a Gemma folder of other sizes:
  d_model, d_head, n_heads, d_mlp, n_layers, n_ctx, eps, d_vocab, n_key_value_heads, rotary_base
  from hidden_size, head_dim, num_attention_heads, intermediate_size, num_hidden_layers,
  max_position_embeddings, rms_norm_eps, vocab_size, num_key_value_heads, rope_theta;
  Gemma 1: rotary_dim = head_dim;
  Gemma 2: window_size = sliding_window, attn_types = ["global", "local"] * ceil(n_layers / 2),
  attn_scale = sqrt(query_pre_attn_scalar) where that is not head_dim, attn_scores_soft_cap /
  output_logits_soft_cap = attn_logit_softcapping / final_logit_softcapping.
Everything else (weight conversion, processing, the forward, hooks) is TL's unpatched code.

TL 2.16.1's Gemma 2 layers are global, local, global, ... (attn_types), while HF's Gemma2 makes
layers 0, 2, ... sliding: the reverse. Only sequences longer than the window (4096 on the real
models) see it. The fixtures follow TL; the HF model they are compared with is given TL's
assignment first (`hf_prepare`), and the max |logit difference| of HF's own assignment is
recorded under "hf_checks" ("hf_native_layer_types_vs_tl_max_abs_diff").
"""
import json

import torch
import transformer_lens.loading_from_pretrained as loading
from transformers import Gemma2Config, GemmaConfig

import make_fixtures as mf
import tl_gemma_patch
from tl_gemma_patch import GEMMA2_ID, GEMMA_ID

VOCAB_SIZE = mf.VOCAB_SIZE
N_CTX = mf.N_CTX
GEMMA2_WINDOW = 4
# Caps small enough that the tiny model's scores and logits reach them (tanh far from linear).
GEMMA2_ATTN_CAP = 2.0
GEMMA2_LOGIT_CAP = 8.0
GEMMA2_QUERY_SCALAR = 16  # != head_dim 8: attn_scale 4.0

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"  # Gemma's ids 0, 1, 2, 3


def gemma_config():
    return GemmaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
        head_dim=8, intermediate_size=48, num_hidden_layers=3, max_position_embeddings=N_CTX,
        rms_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh", rope_theta=10000.0,
        tie_word_embeddings=True, attention_bias=False, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, architectures=["GemmaForCausalLM"],
    )


def gemma2_config():
    return Gemma2Config(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, intermediate_size=40, num_hidden_layers=3, max_position_embeddings=N_CTX,
        rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0,
        query_pre_attn_scalar=GEMMA2_QUERY_SCALAR, sliding_window=GEMMA2_WINDOW,
        attn_logit_softcapping=GEMMA2_ATTN_CAP, final_logit_softcapping=GEMMA2_LOGIT_CAP,
        tie_word_embeddings=True, attention_bias=False, pad_token_id=0, eos_token_id=1,
        bos_token_id=2, architectures=["Gemma2ForCausalLM"],
    )


# ----------------------------------------------------------------------------- TL's table, patched
# tl_gemma_patch.py holds the rules (the bench uses them too); here they read the fixtures' cache.
_original = tl_gemma_patch.ORIGINAL
patched_convert_hf_model_config = tl_gemma_patch.install(mf.snapshot_dir)


# ----------------------------------------------------------------------------- HF comparison
def tl_layer_types(hf_model):
    """Give HF's Gemma2 TL's layer assignment (global first); returns HF's own."""
    own = []
    for l, layer in enumerate(hf_model.model.layers):
        own.append(layer.is_sliding)
        local = l % 2 == 1
        layer.is_sliding = local
        layer.self_attn.sliding_window = GEMMA2_WINDOW if local else None
    return own


def check_gemma2(hf_model, tokens):
    """The window, on TL's layers, must change the logits; HF's own assignment differs from TL's."""
    assert tokens.shape[1] > GEMMA2_WINDOW + 2, tokens.shape
    logits = hf_model(tokens).logits
    layers = hf_model.model.layers
    saved = [(x.is_sliding, x.self_attn.sliding_window) for x in layers]
    try:
        for x in layers:
            x.is_sliding, x.self_attn.sliding_window = False, None
        full = hf_model(tokens).logits
        for l, x in enumerate(layers):
            x.is_sliding = l % 2 == 0
            x.self_attn.sliding_window = GEMMA2_WINDOW if x.is_sliding else None
        native = hf_model(tokens).logits
    finally:
        for x, (s, w) in zip(layers, saved):
            x.is_sliding, x.self_attn.sliding_window = s, w
    gap = (logits - full).abs().max().item()
    assert gap > 0.01, f"the sliding window does not change the logits ({gap})"
    # The logits are capped at GEMMA2_LOGIT_CAP: the cap is active.
    assert logits.abs().max().item() < GEMMA2_LOGIT_CAP
    return {"hf_window_vs_full_max_abs_diff": gap,
            "hf_native_layer_types_vs_tl_max_abs_diff": (native - logits).abs().max().item()}


def prepare_gemma2(hf_model):
    tl_layer_types(hf_model)


# ----------------------------------------------------------------------------- families
def families(Family, TokenizerSpec, rms_modes):
    tokenizer = TokenizerSpec(
        fast_class="GemmaTokenizerFast", front=(PAD, EOS, BOS, UNK), back=(),
        config={"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
                "bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD,
                "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
        special_tokens_map={"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD},
        ids=(2, 1, 3, 0), saved_empty=[2], bos_template=BOS,
    )
    common = {
        "d_model": 32, "n_heads": 4, "d_head": 8, "n_layers": 3, "n_ctx": N_CTX, "eps": 1e-6,
        "d_vocab": VOCAB_SIZE, "gated_mlp": True, "positional_embedding_type": "rotary",
        "rotary_dim": 8, "final_rms": True, "default_prepend_bos": True, "tokenizer_prepends_bos": True,
    }
    return [
        Family(
            model_id=GEMMA_ID, architecture="GemmaForCausalLM", seed=2401, config=gemma_config,
            tokenizer=tokenizer, embedding_params=("model.embed_tokens.weight",),
            expect_cfg={**common, "d_mlp": 48, "n_key_value_heads": 1, "act_fn": "gelu_new",
                        "attn_scale": 8 ** 0.5, "use_normalization_before_and_after": False,
                        # TL tests "gemma-2" in the name first: gemma-2b is labelled Gemma 2
                        # (its dict and conversion are Gemma 1's).
                        "original_architecture": "Gemma2ForCausalLM"},
            expect_mode_cfg=rms_modes,
        ),
        Family(
            model_id=GEMMA2_ID, architecture="Gemma2ForCausalLM", seed=2411, config=gemma2_config,
            tokenizer=tokenizer, embedding_params=("model.embed_tokens.weight",),
            expect_cfg={**common, "d_mlp": 40, "n_key_value_heads": 2, "act_fn": "gelu_pytorch_tanh",
                        "attn_scale": GEMMA2_QUERY_SCALAR ** 0.5, "use_local_attn": True,
                        "window_size": GEMMA2_WINDOW, "attn_types": ["global", "local"] * 2,
                        "attn_scores_soft_cap": GEMMA2_ATTN_CAP, "output_logits_soft_cap": GEMMA2_LOGIT_CAP,
                        "use_normalization_before_and_after": True,
                        "original_architecture": "Gemma2ForCausalLM"},
            expect_mode_cfg=rms_modes,
            hf_check=check_gemma2,
            hf_prepare=prepare_gemma2,
        ),
    ]


# ----------------------------------------------------------------------------- TL's own table
GEMMA_NAMES = [
    "google/gemma-2b", "google/gemma-7b", "google/gemma-2b-it", "google/gemma-7b-it",
    "google/gemma-2-2b", "google/gemma-2-2b-it", "google/gemma-2-9b", "google/gemma-2-9b-it",
    "google/gemma-2-27b", "google/gemma-2-27b-it",
]


def write_config_goldens():
    """golden/gemma_configs.json: TL's (unpatched, hard-coded) get_pretrained_model_config for
    every official Gemma name, as cfg.to_dict() (no file is read: TL reads none for these)."""
    loading.convert_hf_model_config = _original
    try:
        out = {name: json.loads(json.dumps(loading.get_pretrained_model_config(name, device="cpu").to_dict(), default=mf.json_default))
               for name in GEMMA_NAMES}
    finally:
        loading.convert_hf_model_config = patched_convert_hf_model_config
    mf.write_json(mf.GOLDEN / "gemma_configs.json", {"configs": out, "versions": mf.versions()})
    print(f"[configs] {len(out)} Gemma configs")


if __name__ == "__main__":
    write_config_goldens()
