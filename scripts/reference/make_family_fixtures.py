#!/usr/bin/env python
"""Tiny random checkpoints of decoder families other than GPT-2 + TransformerLens goldens.

Usage:  python scripts/reference/make_family_fixtures.py   (independent of make_fixtures.py;
        each script removes and rewrites only its own models' folders; TL_FAMILIES=id1,id2
        regenerates only those families)

For every family in FAMILIES (one checkpoint per family, under a real TL official model id),
writes deterministically (fixed seeds, pinned versions in requirements.txt):
  __test__/fixtures/hub/models--{org}--{name}/{refs/main, snapshots/{rev}/...}
      HF hub-cache layout (save_pretrained, safetensors), tokenizer files for the family
  __test__/fixtures/golden/{slug}/
      processed.* / unprocessed.*  make_fixtures.golden_mode (single / batch / nobos / state_dict /
                                   stop1 / start1, cfg, hook names)
      flags.*                      make_fixtures.golden_flags (use_attn_result +
                                   use_split_qkv_input + use_hook_mlp_in)
      ungroup.*                    make_fixtures.golden_flags with ungroup_grouped_query_attention
                                   (grouped-query families only)
      generation.*                 make_generation_fixtures.golden_generation
      backward.*                   make_backward_fixtures.golden_incl_bwd on the single prompt
                                   (processed weights): every activation and `*_grad` entry, the
                                   cache's key order under "keys" in the JSON
The file formats are exactly those of the GPT-2 goldens (same key conventions, float32 tensors,
int64 `*.tokens`, conversions listed under "converted"), with two additions:
  - where TL's n_ctx exceeds N_CTX (TL caps Qwen2's and Mistral's at 2048 whatever config.json
    says), processed/unprocessed.safetensors hold only the first N_CTX rows (and columns) of the
    n_ctx-long buffers (`blocks.{l}.attn.mask`, `rotary_sin`, `rotary_cos`): the JSON lists them
    under "sliced" (golden key -> TL's full shape) with "sliced_rows": N_CTX;
  - a family with an extra HF check (Mistral's sliding window) records it, with the TL
    unprocessed vs HF max |logit difference|, under "hf_checks" in unprocessed.json.

Adding a family: append a Family to FAMILIES. The model id must be in TL's OFFICIAL_MODEL_NAMES
and be one whose dims TL reads from config.json (TL hard-codes the configs of ids containing
"llama" / "gemma", so use e.g. `01-ai/Yi-6B` for the Llama architecture, `Qwen/Qwen2-0.5B`,
`mistralai/Mistral-7B-v0.1`, ...). `expect_cfg` lists TL cfg values the fixture must produce
(`expect_mode_cfg` those of one loader), and every family's TL unprocessed logits must match HF's
(eager attention) to 1e-4. A remote-code architecture (santacoder) gives its model class as
`hf_model_class`, registered for the Auto classes so that save_pretrained writes its code files
and config.json's auto_map into the snapshot (santacoder_fixtures.py, qwen_fixtures.py).
"""
import json
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import make_backward_fixtures as mb
import make_generation_fixtures as mg
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import GPTJConfig, GPTNeoConfig, OPTConfig
from transformers import Phi3Config, PhiConfig, Qwen3Config
from transformers import BloomConfig
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, LlamaConfig, MistralConfig,
                          PretrainedConfig, Qwen2Config)

VOCAB_SIZE = mf.VOCAB_SIZE  # 512
EOT = mf.EOT
N_CTX = mf.N_CTX  # 64
FLAG_SETTERS = ["set_use_attn_result", "set_use_split_qkv_input", "set_use_hook_mlp_in"]


# ----------------------------------------------------------------------------- family table
UNK, BOS, EOS = "<unk>", "<s>", "</s>"  # the Llama / Mistral SentencePiece specials (ids 0, 1, 2)
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # Qwen2's chat specials (after <|endoftext|>)


@dataclass(frozen=True)
class TokenizerSpec:
    """A byte-level BPE trained on make_fixtures.TRAIN_TEXT (VOCAB_SIZE ids in all).

    `front` special tokens take ids 0.. (the trainer puts its special tokens first), `back` ones
    are added after the learned vocabulary (the last ids). `config` / `special_tokens_map` are
    written verbatim as tokenizer_config.json / special_tokens_map.json; `ids` are the (bos, eos,
    unk, pad) ids AutoTokenizer must report, `saved_empty` what the saved tokenizer gives for ""."""
    fast_class: str  # the class AutoTokenizer must load
    front: tuple
    back: tuple
    config: dict  # tokenizer_config.json ("tokenizer_class" picks AutoTokenizer's class)
    special_tokens_map: dict
    ids: tuple  # (bos_token_id, eos_token_id, unk_token_id, pad_token_id) as AutoTokenizer loads them
    saved_empty: list  # encode("") of the tokenizer as saved
    normalizer: Optional[str] = None  # "NFC" (GPT-NeoX's and Qwen2's tokenizer.json) or None
    bos_template: Optional[str] = None  # a TemplateProcessing post-processor adding this token (Llama)
    bos_in_pair: bool = True  # the pair template repeats it before $B (Llama; GPT2Converter does not)
    slow_files: bool = False  # also vocab.json + merges.txt: TL loads "phi" models' tokenizers slow


@dataclass(frozen=True)
class Family:
    model_id: str  # a TL official model name
    architecture: str  # HF architectures[0]; AutoModelForCausalLM must load this class
    seed: int
    config: Callable[[], PretrainedConfig]  # the tiny HF config
    tokenizer: TokenizerSpec
    embedding_params: tuple  # parameter names of token / position embeddings (O(1) init)
    expect_cfg: dict  # TL cfg entries the checkpoint must produce (asserted on both loaders)
    expect_mode_cfg: dict = field(default_factory=dict)  # mode -> entries for that loader only
    flags: list = field(default_factory=lambda: list(FLAG_SETTERS))
    # A check of the HF model beyond "TL unprocessed == HF" (e.g. that a sliding window masks).
    hf_check: Optional[Callable] = None
    # Applied to the HF model before any comparison with TL (Gemma 2: TL's layer types).
    hf_prepare: Optional[Callable] = None
    # Remote-code families (santacoder): the model class, built from config() directly (it is not
    # registered with AutoModelForCausalLM) and loaded back with trust_remote_code.
    hf_model_class: Optional[type] = None
    conv1d: bool = False  # 2-D weights are Conv1D [in, out]: fan_in is the first dimension


def pythia_config():
    return GPTNeoXConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, intermediate_size=128,
        num_hidden_layers=3, max_position_embeddings=N_CTX, rotary_pct=0.5, rotary_emb_base=10000,
        use_parallel_residual=True, hidden_act="gelu", layer_norm_eps=1e-5, tie_word_embeddings=False,
        attention_bias=True, bos_token_id=0, eos_token_id=0, architectures=["GPTNeoXForCausalLM"],
    )


def yi_config():
    # TL never reads rope_theta for LlamaForCausalLM (cfg.rotary_base stays at its default 10000),
    # so the checkpoint keeps 10000 for TL and HF to agree (the real Yi-6B has 5e6).
    return LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, num_hidden_layers=3, max_position_embeddings=N_CTX, rms_norm_eps=1e-5,
        hidden_act="silu", rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        architectures=["LlamaForCausalLM"],
    )


def qwen2_config():
    # sliding_window is set but off (use_sliding_window false, as on the real Qwen2-0.5B): HF and
    # TL (which never reads it for Qwen2) attend to every earlier position.
    return Qwen2Config(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=40, num_hidden_layers=3, max_position_embeddings=N_CTX, rms_norm_eps=1e-6,
        hidden_act="silu", rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
        sliding_window=4, max_window_layers=3, bos_token_id=VOCAB_SIZE - 3,
        eos_token_id=VOCAB_SIZE - 3, architectures=["Qwen2ForCausalLM"],
    )


MISTRAL_WINDOW = 4


def mistral_config():
    return MistralConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=56, num_hidden_layers=3, max_position_embeddings=N_CTX, rms_norm_eps=1e-5,
        hidden_act="silu", rope_theta=50000.0, sliding_window=MISTRAL_WINDOW, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=None, architectures=["MistralForCausalLM"],
    )


def check_window_masks(hf_model, tokens):
    """The Mistral sliding window must change the logits of the test prompt (HF, eager)."""
    assert tokens.shape[1] > MISTRAL_WINDOW + 2, tokens.shape
    logits = hf_model(tokens).logits
    hf_model.config.sliding_window = None
    try:
        full = hf_model(tokens).logits
    finally:
        hf_model.config.sliding_window = MISTRAL_WINDOW
    assert torch.equal(logits[:, :MISTRAL_WINDOW], full[:, :MISTRAL_WINDOW])
    gap = (logits[:, MISTRAL_WINDOW:] - full[:, MISTRAL_WINDOW:]).abs().max().item()
    assert gap > 0.1, f"the sliding window does not change the logits ({gap})"
    return {"hf_window_vs_full_max_abs_diff": gap}


GPTNEOX_TOKENIZER = TokenizerSpec(
    fast_class="GPTNeoXTokenizerFast", front=(EOT,), back=(),
    config={"tokenizer_class": "GPTNeoXTokenizer", "add_prefix_space": False, "bos_token": EOT,
            "eos_token": EOT, "unk_token": EOT, "model_max_length": N_CTX,
            "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": EOT, "eos_token": EOT, "unk_token": EOT},
    ids=(0, 0, 0, None), saved_empty=[], normalizer="NFC",
)
# Llama / Mistral: <unk> 0, <s> 1, </s> 2, no pad token; tokenizer.json's post-processor adds <s>
# (as the real ones do). No "add_prefix_space" entry: LlamaTokenizerFast would then rebuild the
# tokenizer from a SentencePiece model (from_slow).
LLAMA_TOKENIZER = TokenizerSpec(
    fast_class="LlamaTokenizerFast", front=(UNK, BOS, EOS), back=(),
    config={"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
            "bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": None, "legacy": True,
            "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": BOS, "eos_token": EOS, "unk_token": UNK},
    ids=(1, 2, 0, None), saved_empty=[1], bos_template=BOS,
)
# Qwen2: the learned vocab first, then <|endoftext|> (eos and pad), <|im_start|>, <|im_end|>; no
# bos or unk token.
QWEN2_TOKENIZER = TokenizerSpec(
    fast_class="Qwen2TokenizerFast", front=(),
    back=(EOT, IM_START, IM_END),
    config={"tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "bos_token": None,
            "eos_token": EOT, "pad_token": EOT, "unk_token": None, "errors": "replace",
            "additional_special_tokens": [IM_START, IM_END], "split_special_tokens": False,
            "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
    special_tokens_map={"eos_token": EOT, "pad_token": EOT,
                        "additional_special_tokens": [IM_START, IM_END]},
    ids=(None, VOCAB_SIZE - 3, None, VOCAB_SIZE - 3), saved_empty=[], normalizer="NFC",
)

# TL cfg entries every GQA / RMSNorm / gated-MLP family here shares (from_pretrained folds the
# RMSNorm weights: RMSPre).
RMS_MODES = {"processed": {"normalization_type": "RMSPre"}, "unprocessed": {"normalization_type": "RMS"}}
RMS_GQA = {
    "d_model": 32, "n_heads": 4, "d_head": 8, "n_key_value_heads": 2, "n_layers": 3,
    "d_vocab": VOCAB_SIZE, "act_fn": "silu", "gated_mlp": True, "positional_embedding_type": "rotary",
    "rotary_dim": 8, "rotary_adjacent_pairs": False, "parallel_attn_mlp": False,
    "use_attn_scale": True, "attn_scale": 8 ** 0.5, "ungroup_grouped_query_attention": False,
}

FAMILIES = [
    Family(
        model_id="EleutherAI/pythia-70m",
        architecture="GPTNeoXForCausalLM",
        seed=2001,
        config=pythia_config,
        tokenizer=GPTNEOX_TOKENIZER,
        embedding_params=("gpt_neox.embed_in.weight",),
        expect_cfg={
            "d_model": 32, "n_heads": 4, "d_head": 8, "d_mlp": 128, "n_layers": 3, "n_ctx": N_CTX,
            "d_vocab": VOCAB_SIZE, "act_fn": "gelu", "eps": 1e-5,
            "positional_embedding_type": "rotary", "rotary_dim": 4, "rotary_base": 10000,
            "rotary_adjacent_pairs": False, "parallel_attn_mlp": True,
            "original_architecture": "GPTNeoXForCausalLM", "default_prepend_bos": True,
            # The saved tokenizer adds nothing (encode("") == []), but TL reloads it with
            # add_bos_token=True and GPTNeoXTokenizerFast (transformers 4.52) then prepends
            # <|endoftext|> itself -- as on the real pythia-70m with these versions.
            "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg={"processed": {"normalization_type": "LNPre"},
                         "unprocessed": {"normalization_type": "LN"}},
    ),
    Family(
        # Llama architecture under an id TL reads from config.json (ids containing "llama" get
        # hard-coded configs).
        model_id="01-ai/Yi-6B",
        architecture="LlamaForCausalLM",
        seed=2011,
        config=yi_config,
        tokenizer=LLAMA_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            **RMS_GQA, "d_mlp": 48, "n_ctx": N_CTX, "eps": 1e-5, "rotary_base": 10000,
            "final_rms": True, "use_local_attn": False, "window_size": None, "attn_types": None,
            "original_architecture": "LlamaForCausalLM", "default_prepend_bos": True,
            "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg=RMS_MODES,
    ),
    Family(
        model_id="Qwen/Qwen2-0.5B",
        architecture="Qwen2ForCausalLM",
        seed=2021,
        config=qwen2_config,
        tokenizer=QWEN2_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            # TL caps Qwen2's n_ctx at 2048 and takes int(rope_theta).
            **RMS_GQA, "d_mlp": 40, "n_ctx": 2048, "eps": 1e-6, "rotary_base": 1000000,
            "final_rms": True, "use_local_attn": False, "window_size": None, "attn_types": None,
            "original_architecture": "Qwen2ForCausalLM", "default_prepend_bos": False,
            # TL's Qwen2 cfg says True, but set_tokenizer recomputes it: Qwen2TokenizerFast adds
            # nothing even with add_bos_token=True.
            "tokenizer_prepends_bos": False,
        },
        expect_mode_cfg=RMS_MODES,
    ),
    Family(
        model_id="mistralai/Mistral-7B-v0.1",
        architecture="MistralForCausalLM",
        seed=2031,
        config=mistral_config,
        tokenizer=LLAMA_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            # TL caps Mistral's n_ctx at 2048, reads rope_theta as is (a float) and does not set
            # final_rms (ln_final is still an RMSNorm: normalization_type is RMS).
            **RMS_GQA, "d_mlp": 56, "n_ctx": 2048, "eps": 1e-5, "rotary_base": 50000.0,
            "final_rms": False, "use_local_attn": True, "window_size": MISTRAL_WINDOW,
            "attn_types": ["local"] * 3, "original_architecture": "MistralForCausalLM",
            "default_prepend_bos": True, "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg=RMS_MODES,
        hf_check=check_window_masks,
    ),
]


# GPT-Neo, GPT-J and OPT: GPT-2-style byte-level BPE tokenizers (GPT2TokenizerFast).
NEO_WINDOW = 4


def gpt_neo_config():
    # Layers global, local, local (HF's attention_types pairs expanded); a window shorter than
    # the prompts; intermediate_size None (4 * hidden_size, TL's d_mlp).
    return GPTNeoConfig(
        vocab_size=VOCAB_SIZE, max_position_embeddings=N_CTX, hidden_size=32, num_layers=3,
        num_heads=4, attention_types=[[["global", "local"], 1], [["local"], 1]], window_size=NEO_WINDOW,
        intermediate_size=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
        tie_word_embeddings=True, bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1,
        architectures=["GPTNeoForCausalLM"],
    )


def check_neo_window(hf_model, tokens):
    """GPT-Neo's local layers must change the logits of the test prompt (HF, eager): the same
    model with every layer's causal mask full gives other logits past the window."""
    assert tokens.shape[1] > NEO_WINDOW + 2, tokens.shape
    layers = hf_model.config.attention_layers
    assert "local" in layers and "global" in layers, layers
    logits = hf_model(tokens).logits
    attns = [blk.attn.attention for blk, kind in zip(hf_model.transformer.h, layers) if kind == "local"]
    saved = [a.bias for a in attns]
    try:
        for a in attns:
            a.bias = torch.tril(torch.ones_like(a.bias))
        full = hf_model(tokens).logits
    finally:
        for a, b in zip(attns, saved):
            a.bias = b
    assert torch.equal(logits[:, :NEO_WINDOW], full[:, :NEO_WINDOW])
    gap = (logits[:, NEO_WINDOW:] - full[:, NEO_WINDOW:]).abs().max().item()
    assert gap > 0.1, f"the local attention does not change the logits ({gap})"
    return {"hf_local_vs_full_max_abs_diff": gap}


def gptj_config():
    # Partial rotary (rotary_dim 4 of d_head 8), untied lm_head with a bias.
    return GPTJConfig(
        vocab_size=VOCAB_SIZE, n_positions=N_CTX, n_embd=32, n_layer=3, n_head=4, rotary_dim=4,
        n_inner=None, activation_function="gelu_new", layer_norm_epsilon=1e-5,
        tie_word_embeddings=False, bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1,
        architectures=["GPTJForCausalLM"],
    )


def opt_config():
    # OPT's specials: <s> 0, <pad> 1, </s> 2 (bos and eos), <unk> 3; position table n_ctx + 2 rows.
    return OPTConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=3, ffn_dim=48, num_attention_heads=4,
        max_position_embeddings=N_CTX, do_layer_norm_before=True, word_embed_proj_dim=32,
        activation_function="relu", enable_bias=True, layer_norm_elementwise_affine=True,
        tie_word_embeddings=True, pad_token_id=1, bos_token_id=2, eos_token_id=2,
        architectures=["OPTForCausalLM"],
    )


# GPT-Neo / GPT-J: GPT-2's tokenizer (<|endoftext|> last, nothing added).
NEO_TOKENIZER = TokenizerSpec(
    fast_class="GPT2TokenizerFast", front=(), back=(EOT,),
    config={"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "bos_token": EOT,
            "eos_token": EOT, "unk_token": EOT, "model_max_length": N_CTX,
            "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": EOT, "eos_token": EOT, "unk_token": EOT},
    ids=(VOCAB_SIZE - 1, VOCAB_SIZE - 1, VOCAB_SIZE - 1, None), saved_empty=[],
)
# OPT: GPT2Tokenizer with add_bos_token, which transformers' GPT2Converter turns into a
# post-processor prepending </s> (GPT2TokenizerFast itself never rebuilds it).
OPT_BOS, OPT_PAD = "</s>", "<pad>"
OPT_TOKENIZER = TokenizerSpec(
    fast_class="GPT2TokenizerFast", front=("<s>", OPT_PAD, OPT_BOS, "<unk>"), back=(),
    config={"tokenizer_class": "GPT2Tokenizer", "add_bos_token": True, "add_prefix_space": False,
            "errors": "replace", "bos_token": OPT_BOS, "eos_token": OPT_BOS, "unk_token": OPT_BOS,
            "pad_token": OPT_PAD, "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": OPT_BOS, "eos_token": OPT_BOS, "unk_token": OPT_BOS,
                        "pad_token": OPT_PAD},
    ids=(2, 2, 2, 1), saved_empty=[2], bos_template=OPT_BOS, bos_in_pair=False,
)
LN_MODES = {"processed": {"normalization_type": "LNPre"}, "unprocessed": {"normalization_type": "LN"}}
LN_TINY = {"d_model": 32, "n_heads": 4, "d_head": 8, "n_layers": 3, "n_ctx": N_CTX, "d_vocab": VOCAB_SIZE,
           "eps": 1e-5, "gated_mlp": False, "default_prepend_bos": True}

FAMILIES += [
    Family(
        model_id="EleutherAI/gpt-neo-125M",
        architecture="GPTNeoForCausalLM",
        seed=2101,
        config=gpt_neo_config,
        tokenizer=NEO_TOKENIZER,
        embedding_params=("transformer.wte.weight", "transformer.wpe.weight"),
        expect_cfg={
            **LN_TINY, "d_mlp": 128, "act_fn": "gelu_new", "positional_embedding_type": "standard",
            # No scaling of attention scores: attn_scale stays TL's unset -1.
            "use_attn_scale": False, "attn_scale": -1.0, "use_local_attn": True,
            "window_size": NEO_WINDOW, "attn_types": ["global", "local", "local"],
            "parallel_attn_mlp": False, "original_architecture": "GPTNeoForCausalLM",
            "tokenizer_prepends_bos": False,
        },
        expect_mode_cfg=LN_MODES,
        hf_check=check_neo_window,
    ),
    Family(
        model_id="EleutherAI/gpt-j-6B",
        architecture="GPTJForCausalLM",
        seed=2111,
        config=gptj_config,
        tokenizer=NEO_TOKENIZER,
        embedding_params=("transformer.wte.weight",),
        expect_cfg={
            **LN_TINY, "d_mlp": 128, "act_fn": "gelu_new", "positional_embedding_type": "rotary",
            "rotary_dim": 4, "rotary_adjacent_pairs": True, "rotary_base": 10000,
            "parallel_attn_mlp": True, "use_attn_scale": True, "attn_scale": 8 ** 0.5,
            "use_local_attn": False, "original_architecture": "GPTJForCausalLM",
            "tokenizer_prepends_bos": False,
        },
        expect_mode_cfg=LN_MODES,
    ),
    Family(
        model_id="facebook/opt-125m",
        architecture="OPTForCausalLM",
        seed=2121,
        config=opt_config,
        tokenizer=OPT_TOKENIZER,
        embedding_params=("model.decoder.embed_tokens.weight", "model.decoder.embed_positions.weight"),
        expect_cfg={
            **LN_TINY, "d_mlp": 48, "act_fn": "relu", "positional_embedding_type": "standard",
            "parallel_attn_mlp": False, "use_attn_scale": True, "attn_scale": 8 ** 0.5,
            "use_local_attn": False, "original_architecture": "OPTForCausalLM",
            # The saved tokenizer.json prepends </s> (as transformers converts OPT's).
            "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg=LN_MODES,
    ),
]


# Phi, Phi-3 (phi-4) and Qwen3. TL loads the tokenizer of every model whose name contains "phi"
# with use_fast=False: the slow GPT-2-style classes (CodeGenTokenizer, GPT2Tokenizer) honour
# add_bos_token=True, so TL's phi models prepend BOS although their tokenizer.json adds nothing.
def tl_loads_slow(fam):
    """HookedTransformer.__init__: use_fast = "phi" not in cfg.tokenizer_name.lower()."""
    return "phi" in fam.model_id.lower()


def write_slow_bpe_files(tok, snap):
    """vocab.json (every id, specials included) and merges.txt of the byte-level BPE: what the
    slow GPT-2-style tokenizer classes read instead of tokenizer.json."""
    vocab = sorted(tok.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(VOCAB_SIZE))
    (snap / "vocab.json").write_text(json.dumps(dict(vocab), ensure_ascii=False) + "\n")
    merges = json.loads(tok.to_str())["model"]["merges"]
    lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
    (snap / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")


def check_slow_tokenizer(fam, fast_tok, slow_tok):
    """The slow tokenizer TL loads must split every fixture prompt as tokenizer.json does, and
    add only the BOS in front."""
    assert not slow_tok.is_fast and type(slow_tok).__name__ == fam.tokenizer.fast_class[: -len("Fast")]
    assert slow_tok("").input_ids == [slow_tok.bos_token_id]
    for text in [mf.PROMPT, mf.PROMPT2, *mg.PROMPTS, mf.TRAIN_TEXT[:400]]:
        assert slow_tok(text).input_ids == [slow_tok.bos_token_id] + fast_tok(text).input_ids, text


def phi_config():
    # phi-2's shape in small: partial rotary (rotary_dim 4 of d_head 8), untied lm_head with a bias.
    return PhiConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=72, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=N_CTX, partial_rotary_factor=0.5,
        rope_theta=25000.0, hidden_act="gelu_new", layer_norm_eps=1e-5, qk_layernorm=False,
        tie_word_embeddings=False, bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1,
        architectures=["PhiForCausalLM"],
    )


def phi3_config():
    # phi-4's shape in small (grouped-query attention); no sliding window or rope scaling, which
    # TL does not read.
    return Phi3Config(
        vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=40, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=N_CTX,
        original_max_position_embeddings=N_CTX, rms_norm_eps=1e-5, hidden_act="silu",
        rope_theta=250000.0, rope_scaling=None, partial_rotary_factor=1.0, sliding_window=None,
        tie_word_embeddings=False, bos_token_id=VOCAB_SIZE - 4, eos_token_id=VOCAB_SIZE - 2,
        pad_token_id=VOCAB_SIZE - 1, architectures=["Phi3ForCausalLM"],
    )


QWEN3_HEAD_DIM = 12  # not hidden_size / num_attention_heads (8)


def qwen3_config():
    return Qwen3Config(
        vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=44, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=QWEN3_HEAD_DIM,
        max_position_embeddings=N_CTX, rms_norm_eps=1e-6, hidden_act="silu", rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False, attention_bias=False,
        bos_token_id=VOCAB_SIZE - 3, eos_token_id=VOCAB_SIZE - 1, architectures=["Qwen3ForCausalLM"],
    )


# phi-1 / phi-1.5 / phi-2: CodeGenTokenizer, GPT-2's layout (<|endoftext|> last: bos, eos, unk).
PHI_TOKENIZER = TokenizerSpec(
    fast_class="CodeGenTokenizerFast", front=(), back=(EOT,),
    config={"tokenizer_class": "CodeGenTokenizer", "add_prefix_space": False, "bos_token": EOT,
            "eos_token": EOT, "unk_token": EOT, "model_max_length": N_CTX,
            "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": EOT, "eos_token": EOT, "unk_token": EOT},
    ids=(VOCAB_SIZE - 1, VOCAB_SIZE - 1, VOCAB_SIZE - 1, None), saved_empty=[], slow_files=True,
)
# phi-4: GPT2Tokenizer; <|endoftext|> (bos, unk), <|im_start|>, <|im_end|> (eos) and a pad token
# after the learned vocabulary.
PHI4_PAD = "<|dummy_85|>"
PHI4_TOKENIZER = TokenizerSpec(
    fast_class="GPT2TokenizerFast", front=(), back=(EOT, IM_START, IM_END, PHI4_PAD),
    config={"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "bos_token": EOT,
            "eos_token": IM_END, "unk_token": EOT, "pad_token": PHI4_PAD, "model_max_length": N_CTX,
            "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": EOT, "eos_token": IM_END, "unk_token": EOT, "pad_token": PHI4_PAD},
    ids=(VOCAB_SIZE - 4, VOCAB_SIZE - 2, VOCAB_SIZE - 4, VOCAB_SIZE - 1), saved_empty=[], slow_files=True,
)
# Qwen3 (post-trained): Qwen2's layout with <|im_end|> as eos and <|endoftext|> as pad.
QWEN3_TOKENIZER = TokenizerSpec(
    fast_class="Qwen2TokenizerFast", front=(), back=(EOT, IM_START, IM_END),
    config={"tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "bos_token": None,
            "eos_token": IM_END, "pad_token": EOT, "unk_token": None, "errors": "replace",
            "additional_special_tokens": [IM_START, IM_END], "split_special_tokens": False,
            "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
    special_tokens_map={"eos_token": IM_END, "pad_token": EOT,
                        "additional_special_tokens": [IM_START, IM_END]},
    ids=(None, VOCAB_SIZE - 1, None, VOCAB_SIZE - 3), saved_empty=[], normalizer="NFC",
)

FAMILIES += [
    Family(
        model_id="microsoft/phi-2",
        architecture="PhiForCausalLM",
        seed=2201,
        config=phi_config,
        tokenizer=PHI_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            **LN_TINY, "d_mlp": 72, "act_fn": "gelu_new", "positional_embedding_type": "rotary",
            "rotary_dim": 4, "rotary_base": 25000.0, "rotary_adjacent_pairs": False,
            "parallel_attn_mlp": True, "use_attn_scale": True, "attn_scale": 8 ** 0.5,
            "original_architecture": "PhiForCausalLM", "trust_remote_code": True,
            # The saved tokenizer adds nothing, but TL loads it slow with add_bos_token=True.
            "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg=LN_MODES,
    ),
    Family(
        model_id="microsoft/phi-4",
        architecture="Phi3ForCausalLM",
        seed=2211,
        config=phi3_config,
        tokenizer=PHI4_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            # TL keeps max_position_embeddings, reads rope_theta as is and sets no final_rms.
            **RMS_GQA, "d_mlp": 40, "n_ctx": N_CTX, "eps": 1e-5, "rotary_base": 250000.0,
            "final_rms": False, "use_local_attn": False, "original_architecture": "Phi3ForCausalLM",
            "trust_remote_code": True, "default_prepend_bos": True, "tokenizer_prepends_bos": True,
        },
        expect_mode_cfg=RMS_MODES,
    ),
    Family(
        model_id="Qwen/Qwen3-0.6B",
        architecture="Qwen3ForCausalLM",
        seed=2221,
        config=qwen3_config,
        tokenizer=QWEN3_TOKENIZER,
        embedding_params=("model.embed_tokens.weight",),
        expect_cfg={
            **RMS_GQA, "d_head": QWEN3_HEAD_DIM, "rotary_dim": QWEN3_HEAD_DIM,
            "attn_scale": QWEN3_HEAD_DIM ** 0.5, "d_mlp": 44, "n_ctx": 2048, "eps": 1e-6,
            "rotary_base": 1000000, "final_rms": True, "use_qk_norm": True,
            "original_architecture": "Qwen3ForCausalLM", "trust_remote_code": True,
            "default_prepend_bos": False, "tokenizer_prepends_bos": False,
        },
        expect_mode_cfg=RMS_MODES,
    ),
]


# Bloom: ALiBi, a LayerNorm on the embeddings, fused per-head QKV, tied embeddings; TL caps n_ctx
# at 2048. 4 heads: TL's ALiBi multipliers (2^(-8/n) geometric for any n) equal HF's only for a
# power-of-two head count (as every real Bloom has), and TL must match HF here.
def bloom_config():
    return BloomConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, n_layer=3, n_head=4, layer_norm_epsilon=1e-5,
        apply_residual_connection_post_layernorm=False, tie_word_embeddings=True, bos_token_id=1,
        eos_token_id=2, pad_token_id=3, architectures=["BloomForCausalLM"],
    )


# Bloom's specials: <unk> 0, <s> 1, </s> 2, <pad> 3; its tokenizer adds nothing.
BLOOM_PAD = "<pad>"
BLOOM_TOKENIZER = TokenizerSpec(
    fast_class="BloomTokenizerFast", front=(UNK, BOS, EOS, BLOOM_PAD), back=(),
    config={"tokenizer_class": "BloomTokenizerFast", "add_prefix_space": False, "bos_token": BOS,
            "eos_token": EOS, "unk_token": UNK, "pad_token": BLOOM_PAD, "model_max_length": N_CTX,
            "clean_up_tokenization_spaces": False},
    special_tokens_map={"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": BLOOM_PAD},
    ids=(1, 2, 0, 3), saved_empty=[],
)

FAMILIES += [
    Family(
        model_id="bigscience/bloom-560m",
        architecture="BloomForCausalLM",
        seed=2301,
        config=bloom_config,
        tokenizer=BLOOM_TOKENIZER,
        embedding_params=("transformer.word_embeddings.weight",),
        expect_cfg={
            **LN_TINY, "n_ctx": 2048, "d_mlp": 128, "act_fn": "gelu_fast",
            "positional_embedding_type": "alibi", "post_embedding_ln": True,
            "parallel_attn_mlp": False, "use_attn_scale": True, "attn_scale": 8 ** 0.5,
            "original_architecture": "BloomForCausalLM", "default_prepend_bos": False,
            "tokenizer_prepends_bos": False,
        },
        expect_mode_cfg=LN_MODES,
    ),
]


def zero_unused_pos_embed(load):
    """TL builds `pos_embed` for ALiBi models too (every scheme but rotary), never reads it, and
    leaves W_pos as torch.empty memory (then centred): the goldens hold zeros there instead of
    whatever that memory held, so they are deterministic (the logits cannot depend on it)."""
    def wrapped(model_id, mode, **kwargs):
        model = load(model_id, mode, **kwargs)
        if model.cfg.positional_embedding_type == "alibi":
            with torch.no_grad():
                model.pos_embed.W_pos.zero_()
        return model
    return wrapped


mf.load_tl = zero_unused_pos_embed(mf.load_tl)


# Gemma / Gemma 2: reduced checkpoints under the official ids, with TL's hard-coded config table
# patched for them (gemma_fixtures.py says exactly how).
import gemma_fixtures  # noqa: E402

FAMILIES += gemma_fixtures.families(Family, TokenizerSpec, RMS_MODES)

# Mixtral (MoE): TL reads its config.json; its processed goldens fold the RMSNorm weights TL
# 2.16.1 drops (mixtral_fixtures.py says exactly how).
import mixtral_fixtures  # noqa: E402

FAMILIES += mixtral_fixtures.families(Family, LLAMA_TOKENIZER, RMS_GQA, RMS_MODES)
mf.load_tl = mixtral_fixtures.correct_processed(mf.load_tl)

# SantaCoder: multi-query attention in remote code that the fixture ships itself
# (santacoder_fixtures.py says how and why).
import santacoder_fixtures  # noqa: E402

FAMILIES += santacoder_fixtures.families(Family, TokenizerSpec, LN_TINY, LN_MODES)

# Qwen v1 (QWenLMHeadModel): Llama-like blocks in remote code that the fixture ships itself
# (qwen_fixtures.py says how and why).
import qwen_fixtures  # noqa: E402

FAMILIES += qwen_fixtures.families(Family, RMS_MODES)

# Second checkpoints of GPT-NeoX, Phi and Mixtral (variant_fixtures.py says why).
import variant_fixtures  # noqa: E402

FAMILIES += variant_fixtures.families(Family, GPTNEOX_TOKENIZER, PHI_TOKENIZER, LN_MODES, LLAMA_TOKENIZER, RMS_MODES)


# ----------------------------------------------------------------------------- tokenizer
def build_tokenizer(spec):
    """Byte-level BPE on make_fixtures.TRAIN_TEXT (VOCAB_SIZE ids) with spec's special tokens
    (front == () and back == (EOT,) without a normalizer is make_fixtures' GPT-2 layout).
    A spec with build / write / check methods makes a tokenizer of its own (Qwen v1's tiktoken
    files, qwen_fixtures.QWenTiktokenSpec)."""
    if hasattr(spec, "build"):
        return spec.build()
    tok = Tokenizer(models.BPE())
    if spec.normalizer == "NFC":
        tok.normalizer = normalizers.NFC()
    else:
        assert spec.normalizer is None, spec.normalizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(spec.back),
        min_frequency=1,
        show_progress=False,
        special_tokens=list(spec.front),  # the trainer puts its special tokens first
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([mf.TRAIN_TEXT], trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE - len(spec.back), tok.get_vocab_size()
    if spec.back:
        tok.add_special_tokens(list(spec.back))
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    specials = {name: i for i, name in enumerate(spec.front)}
    specials.update({name: VOCAB_SIZE - len(spec.back) + i for i, name in enumerate(spec.back)})
    if spec.bos_template is not None:
        # What LlamaTokenizerFast.update_post_processor builds for add_bos_token=True.
        bos_id = tok.token_to_id(spec.bos_template)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_template}:0 $A:0",
            pair=(f"{spec.bos_template}:0 $A:0 {spec.bos_template}:1 $B:1" if spec.bos_in_pair
                  else f"{spec.bos_template}:0 $A:0 $B:1"),
            special_tokens=[(spec.bos_template, bos_id)],
        )
    assert tok.encode("").ids == spec.saved_empty, tok.encode("").ids
    for name, i in specials.items():
        assert tok.token_to_id(name) == i, (name, tok.token_to_id(name), i)
        assert tok.encode(name, add_special_tokens=False).ids == [i], f"{name} must be a special token"
    return tok


def write_tokenizer_files(spec, tok, snap):
    if hasattr(spec, "write"):
        return spec.write(tok, snap)
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    mf.write_json(snap / "tokenizer_config.json", spec.config)
    mf.write_json(snap / "special_tokens_map.json", spec.special_tokens_map)
    if spec.slow_files:
        write_slow_bpe_files(tok, snap)


# ----------------------------------------------------------------------------- checkpoints
def build_hf_model(fam):
    """Random HF model with make_fixtures' scales: norm weights 1 + 0.1 N, every bias 0.1 N,
    embeddings 0.5 N, every other (nn.Linear, [out, in]) weight N / sqrt(fan_in)."""
    torch.manual_seed(fam.seed)
    if fam.hf_model_class is not None:
        model = fam.hf_model_class(fam.config()).eval()
    else:
        model = AutoModelForCausalLM.from_config(fam.config(), attn_implementation="eager").eval()
    assert type(model).__name__ == fam.architecture, type(model)
    gen = torch.Generator().manual_seed(fam.seed + 1)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        if p.dim() == 1:
            is_norm_weight = name.endswith(".weight")
            assert not is_norm_weight or "norm" in name or ".ln_" in name, name
            p.copy_((1.0 if is_norm_weight else 0.0) + 0.1 * noise)
        elif name in fam.embedding_params:
            p.copy_(0.5 * noise)
        else:
            assert p.dim() == 2, name
            p.copy_(noise / p.shape[0 if fam.conv1d else 1] ** 0.5)
    return model


def write_checkpoint(fam, tok):
    repo = mf.hub_repo_dir(fam.model_id)
    snap = mf.snapshot_dir(fam.model_id)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(mf.revision(fam.model_id))
    build_hf_model(fam).save_pretrained(str(snap), safe_serialization=True)
    write_tokenizer_files(fam.tokenizer, tok, snap)


def check_hf_loading(fam):
    """HF must load model + tokenizer offline from the fabricated cache."""
    spec = fam.tokenizer
    remote = {"trust_remote_code": True} if fam.hf_model_class is not None else {}
    hf_model = AutoModelForCausalLM.from_pretrained(fam.model_id, attn_implementation="eager", **remote).eval()
    assert type(hf_model).__name__ == fam.architecture, type(hf_model)
    if hasattr(spec, "check"):
        return (hf_model, *spec.check(fam.model_id))
    hf_tok = AutoTokenizer.from_pretrained(fam.model_id)
    assert type(hf_tok).__name__ == spec.fast_class, type(hf_tok)
    got = (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.unk_token_id, hf_tok.pad_token_id)
    assert got == spec.ids, f"{fam.model_id}: (bos, eos, unk, pad) ids {got}, expected {spec.ids}"
    assert len(hf_tok) == VOCAB_SIZE
    assert hf_tok("").input_ids == spec.saved_empty, hf_tok("").input_ids
    ids = hf_tok(mf.PROMPT).input_ids
    assert ids[: len(spec.saved_empty)] == spec.saved_empty
    assert hf_tok.decode(ids, skip_special_tokens=True) == mf.PROMPT
    # What TL will see: it reloads the tokenizer with add_bos_token=True (slow for "phi" names).
    tl_tok = AutoTokenizer.from_pretrained(fam.model_id, add_bos_token=True, use_fast=not tl_loads_slow(fam))
    if tl_loads_slow(fam):
        check_slow_tokenizer(fam, hf_tok, tl_tok)
    return hf_model, ids, tl_tok("").input_ids


def check_tl_cfg(fam, model, mode):
    cfg = model.cfg
    expect = {**fam.expect_cfg, **fam.expect_mode_cfg.get(mode, {})}
    for k, v in expect.items():
        assert getattr(cfg, k) == v, f"{fam.model_id} {mode}: cfg.{k} = {getattr(cfg, k)!r}, expected {v!r}"


def check_tl_matches_hf(fam, hf_model):
    """TL unprocessed logits vs HF's (eager) on the single prompt: the max |difference|."""
    model = mf.load_tl(fam.model_id, "unprocessed")
    tokens = model.to_tokens(mf.PROMPT)
    diff = (model(tokens) - hf_model(tokens).logits).abs().max().item()
    assert diff < 1e-4, f"{fam.model_id}: TL unprocessed vs HF logits differ by {diff}"
    return tokens, diff


def slice_long_buffers(model_id, mode, n_ctx):
    """TL caps some families' n_ctx at 2048: the [n_ctx, n_ctx] attention masks (16 MiB each as
    float32) and the [n_ctx, rotary_dim] rotary tables are stored as their first N_CTX rows (and
    columns), listed under "sliced" in the JSON (key -> TL's full shape). Nothing is sliced when
    n_ctx <= N_CTX."""
    if n_ctx <= N_CTX:
        return {}
    out = mf.GOLDEN / mf.slug(model_id)
    path = out / f"{mode}.safetensors"
    tensors = load_file(str(path))
    sliced = {}
    for k, v in tensors.items():
        if not k.startswith("state_dict.") or n_ctx not in v.shape:
            continue
        # pos_embed.W_pos: ALiBi models' unused (zeroed, see zero_unused_pos_embed) table.
        assert k.endswith((".mask", ".rotary_sin", ".rotary_cos")) or k == "state_dict.pos_embed.W_pos", (k, v.shape)
        tensors[k] = v[tuple(slice(0, N_CTX) if d == n_ctx else slice(None) for d in v.shape)].contiguous()
        sliced[k] = list(v.shape)
    save_file(tensors, str(path), metadata={"format": "pt"})
    meta = json.loads((out / f"{mode}.json").read_text())
    meta = {**{k: v for k, v in meta.items() if k != "versions"}, "sliced": sliced,
            "sliced_rows": N_CTX, "versions": meta["versions"]}
    mf.write_json(out / f"{mode}.json", meta)
    return sliced


def record_checks(model_id, mode, checks):
    """Add `checks` (HF comparisons) to golden/{slug}/{mode}.json, before "versions"."""
    path = mf.GOLDEN / mf.slug(model_id) / f"{mode}.json"
    meta = json.loads(path.read_text())
    meta = {**{k: v for k, v in meta.items() if k != "versions"}, "hf_checks": checks,
            "versions": meta["versions"]}
    mf.write_json(path, meta)


# ----------------------------------------------------------------------------- goldens
def golden_backward(model_id):
    """make_backward_fixtures' incl_bwd run on the single prompt, as golden/{slug}/backward.*."""
    with torch.enable_grad():
        model = mf.load_tl(model_id, "processed")
        tokens = model.to_tokens(mf.PROMPT)
        t, meta = mb.golden_incl_bwd(model, tokens)
        model.zero_grad(set_to_none=True)
        model.reset_hooks()
    meta = {"model_id": model_id, "loader": "from_pretrained", "prompt": mf.PROMPT, **meta}
    out = mf.GOLDEN / mf.slug(model_id)
    meta["converted"] = mf.save_tensors(out / "backward.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "backward.json", meta)
    print(f"[backward] {model_id}: {len(t)} tensors")


ALIBI_HEADS = (3, 4, 6, 12)  # TL's multipliers for power-of-two and other head counts
ALIBI_CTX = 7


def golden_alibi(model_id):
    """TL's AbstractAttention.create_alibi_bias(n_heads, ALIBI_CTX) for ALIBI_HEADS, as
    golden/{slug}/alibi.* (`bias.{n}`: [n, ctx, ctx]; `multipliers.{n}`: [n]), and the scores of
    a run after a longer one (`history.*`)."""
    from transformer_lens.components import AbstractAttention
    t = {}
    for n in ALIBI_HEADS:
        t[f"bias.{n}"] = AbstractAttention.create_alibi_bias(n, ALIBI_CTX, torch.device("cpu"))
        t[f"multipliers.{n}"] = AbstractAttention.create_alibi_multipliers(n, torch.device("cpu"))
    # TL keeps each layer's table at the largest key length it has run: a shorter run after a
    # longer one (same model instance) takes the last rows of the larger table. The longer run
    # stops after layer 0, so only that layer's scores of the later run move.
    model = mf.load_tl(model_id, "processed")
    t["history.long_tokens"] = model.to_tokens(mf.PROMPT + " " + mf.PROMPT2)
    model(t["history.long_tokens"], stop_at_layer=1)
    t["history.tokens"] = model.to_tokens(mf.PROMPT)
    _, cache = model.run_with_cache(t["history.tokens"], names_filter=lambda n: n.endswith("hook_attn_scores"))
    for l in range(model.cfg.n_layers):
        t[f"history.attn_scores.{l}"] = cache[f"blocks.{l}.attn.hook_attn_scores"]
    out = mf.GOLDEN / mf.slug(model_id)
    meta = {"heads": list(ALIBI_HEADS), "ctx": ALIBI_CTX, "history": "history.long_tokens run with stop_at_layer=1, "
            "then history.tokens with run_with_cache: blocks.{l}.attn.hook_attn_scores as history.attn_scores.{l}"}
    meta["converted"] = mf.save_tensors(out / "alibi.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "alibi.json", meta)
    print(f"[alibi] {model_id}: {len(t)} tensors")


# ----------------------------------------------------------------------------- main
def clean_stray(model_ids):
    """Loading may leave .locks / .no_exist behind: remove those of these models only."""
    locks = mf.HUB / ".locks"
    for model_id in model_ids:
        repo = mf.hub_repo_dir(model_id)
        shutil.rmtree(repo / ".no_exist", ignore_errors=True)
        shutil.rmtree(locks / repo.name, ignore_errors=True)
    if locks.exists() and not any(locks.iterdir()):
        locks.rmdir()


def selected_families():
    """FAMILIES, or only the model ids listed in TL_FAMILIES (comma-separated), so one family's
    fixtures can be regenerated without touching the others'."""
    only = [x for x in mf.os.environ.get("TL_FAMILIES", "").split(",") if x]
    unknown = set(only) - {fam.model_id for fam in FAMILIES}
    assert not unknown, f"TL_FAMILIES names no family: {sorted(unknown)}"
    return [fam for fam in FAMILIES if not only or fam.model_id in only]


def main():
    all_ids = [fam.model_id for fam in FAMILIES]
    assert len(set(all_ids)) == len(all_ids) and not set(all_ids) & {m for m, *_ in mf.MODELS}
    assert len({fam.seed for fam in FAMILIES}) == len(FAMILIES)
    families = selected_families()
    ids = [fam.model_id for fam in families]
    mf.clean_model_dirs(ids)
    for fam in families:
        write_checkpoint(fam, build_tokenizer(fam.tokenizer))

    for fam in families:
        hf_model, prompt_ids, tl_empty = check_hf_loading(fam)
        if fam.hf_prepare:
            fam.hf_prepare(hf_model)
        print(f"[tokenizer] {fam.model_id}: prompt -> {len(prompt_ids)} tokens; "
              f"with add_bos_token=True encode('') -> {tl_empty}")
        tokens, diff = check_tl_matches_hf(fam, hf_model)
        print(f"[hf] {fam.model_id}: TL unprocessed vs HF logits max |diff| {diff:.3g}")
        checks = fam.hf_check(hf_model, tokens) if fam.hf_check else None
        for mode in mf.MODES:
            model = mf.load_tl(fam.model_id, mode)
            check_tl_cfg(fam, model, mode)
            assert model.cfg.n_ctx >= N_CTX
            mf.golden_mode(fam.model_id, mode, hf_model)  # asserts TL unprocessed == HF logits
            sliced = slice_long_buffers(fam.model_id, mode, model.cfg.n_ctx)
            if sliced:
                print(f"[{mode}] {fam.model_id}: {len(sliced)} n_ctx-long buffers stored as their first {N_CTX} rows")
        if checks:
            record_checks(fam.model_id, "unprocessed", {"tl_vs_hf_logits_max_abs_diff": diff, **checks})
            print(f"[hf] {fam.model_id}: {checks}")
        mf.golden_flags(fam.model_id, "flags", fam.flags)
        if mf.load_tl(fam.model_id, "processed").cfg.n_key_value_heads is not None:
            # K/V hooks with every query head's copy (TL's ungroup_grouped_query_attention).
            mf.golden_flags(fam.model_id, "ungroup", ["set_ungroup_grouped_query_attention"])
        torch.manual_seed(0)
        mg.golden_generation(fam.model_id)
        golden_backward(fam.model_id)
        if mf.load_tl(fam.model_id, "processed").cfg.positional_embedding_type == "alibi":
            golden_alibi(fam.model_id)

    clean_stray(ids)
    shutil.rmtree(mf.os.environ["HF_HOME"], ignore_errors=True)

    total = 0
    for model_id in ids:
        for d in (mf.hub_repo_dir(model_id), mf.GOLDEN / mf.slug(model_id)):
            for f in sorted(d.rglob("*")):
                if f.is_file():
                    total += f.stat().st_size
                    print(f"{f.stat().st_size:>9}  {f.relative_to(mf.FIXTURES)}")
    print(f"TOTAL family fixtures size: {total} bytes ({total / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
