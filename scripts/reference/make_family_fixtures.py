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
(eager attention) to 1e-4.
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


# ----------------------------------------------------------------------------- tokenizer
def build_tokenizer(spec):
    """Byte-level BPE on make_fixtures.TRAIN_TEXT (VOCAB_SIZE ids) with spec's special tokens
    (front == () and back == (EOT,) without a normalizer is make_fixtures' GPT-2 layout)."""
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
            pair=f"{spec.bos_template}:0 $A:0 {spec.bos_template}:1 $B:1",
            special_tokens=[(spec.bos_template, bos_id)],
        )
    assert tok.encode("").ids == spec.saved_empty, tok.encode("").ids
    for name, i in specials.items():
        assert tok.token_to_id(name) == i, (name, tok.token_to_id(name), i)
        assert tok.encode(name, add_special_tokens=False).ids == [i], f"{name} must be a special token"
    return tok


def write_tokenizer_files(spec, tok, snap):
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    mf.write_json(snap / "tokenizer_config.json", spec.config)
    mf.write_json(snap / "special_tokens_map.json", spec.special_tokens_map)


# ----------------------------------------------------------------------------- checkpoints
def build_hf_model(fam):
    """Random HF model with make_fixtures' scales: norm weights 1 + 0.1 N, every bias 0.1 N,
    embeddings 0.5 N, every other (nn.Linear, [out, in]) weight N / sqrt(fan_in)."""
    torch.manual_seed(fam.seed)
    model = AutoModelForCausalLM.from_config(fam.config(), attn_implementation="eager").eval()
    assert type(model).__name__ == fam.architecture, type(model)
    gen = torch.Generator().manual_seed(fam.seed + 1)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        if p.dim() == 1:
            is_norm_weight = name.endswith(".weight")
            assert not is_norm_weight or "norm" in name, name
            p.copy_((1.0 if is_norm_weight else 0.0) + 0.1 * noise)
        elif name in fam.embedding_params:
            p.copy_(0.5 * noise)
        else:
            assert p.dim() == 2, name
            p.copy_(noise / p.shape[1] ** 0.5)
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
    hf_model = AutoModelForCausalLM.from_pretrained(fam.model_id, attn_implementation="eager").eval()
    assert type(hf_model).__name__ == fam.architecture, type(hf_model)
    hf_tok = AutoTokenizer.from_pretrained(fam.model_id)
    assert type(hf_tok).__name__ == spec.fast_class, type(hf_tok)
    got = (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.unk_token_id, hf_tok.pad_token_id)
    assert got == spec.ids, f"{fam.model_id}: (bos, eos, unk, pad) ids {got}, expected {spec.ids}"
    assert len(hf_tok) == VOCAB_SIZE
    assert hf_tok("").input_ids == spec.saved_empty, hf_tok("").input_ids
    ids = hf_tok(mf.PROMPT).input_ids
    assert ids[: len(spec.saved_empty)] == spec.saved_empty
    assert hf_tok.decode(ids, skip_special_tokens=True) == mf.PROMPT
    # What TL will see: it reloads the tokenizer with add_bos_token=True.
    tl_tok = AutoTokenizer.from_pretrained(fam.model_id, add_bos_token=True)
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
        assert k.endswith((".mask", ".rotary_sin", ".rotary_cos")), (k, v.shape)
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
