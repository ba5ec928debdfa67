#!/usr/bin/env python
"""Tiny random checkpoints of decoder families other than GPT-2 + TransformerLens goldens.

Usage:  python scripts/reference/make_family_fixtures.py   (independent of make_fixtures.py;
        each script removes and rewrites only its own models' folders)

For every family in FAMILIES (one checkpoint per family, under a real TL official model id),
writes deterministically (fixed seeds, pinned versions in requirements.txt):
  __test__/fixtures/hub/models--{org}--{name}/{refs/main, snapshots/{rev}/...}
      HF hub-cache layout (save_pretrained, safetensors), tokenizer files for the family
  __test__/fixtures/golden/{slug}/
      processed.* / unprocessed.*  make_fixtures.golden_mode (single / batch / nobos / state_dict /
                                   stop1 / start1, cfg, hook names)
      flags.*                      make_fixtures.golden_flags (use_attn_result +
                                   use_split_qkv_input + use_hook_mlp_in)
      generation.*                 make_generation_fixtures.golden_generation
      backward.*                   make_backward_fixtures.golden_incl_bwd on the single prompt
                                   (processed weights): every activation and `*_grad` entry, the
                                   cache's key order under "keys" in the JSON
The file formats are exactly those of the GPT-2 goldens (same key conventions, float32 tensors,
int64 `*.tokens`, conversions listed under "converted").

Adding a family: append a Family to FAMILIES. The model id must be in TL's OFFICIAL_MODEL_NAMES
and be one whose dims TL reads from config.json (TL hard-codes the configs of ids containing
"llama" / "gemma", so use e.g. `01-ai/Yi-6B` for the Llama architecture, `Qwen/Qwen2-0.5B`,
`mistralai/Mistral-7B-v0.1`, ...). `expect_cfg` lists TL cfg values the fixture must produce.
"""
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import make_backward_fixtures as mb
import make_generation_fixtures as mg
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, PretrainedConfig

VOCAB_SIZE = mf.VOCAB_SIZE  # 512
EOT = mf.EOT
N_CTX = mf.N_CTX  # 64
FLAG_SETTERS = ["set_use_attn_result", "set_use_split_qkv_input", "set_use_hook_mlp_in"]


# ----------------------------------------------------------------------------- family table
@dataclass(frozen=True)
class TokenizerSpec:
    eot_id: int  # id of <|endoftext|>: 0 (GPT-NeoX / Pythia) or VOCAB_SIZE - 1 (GPT-2)
    tokenizer_class: str  # "tokenizer_class" in tokenizer_config.json
    fast_class: str  # the class AutoTokenizer must load
    normalizer: Optional[str] = None  # "NFC" (GPT-NeoX's tokenizer.json) or None


@dataclass(frozen=True)
class Family:
    model_id: str  # a TL official model name
    architecture: str  # HF architectures[0]; AutoModelForCausalLM must load this class
    seed: int
    config: Callable[[], PretrainedConfig]  # the tiny HF config
    tokenizer: TokenizerSpec
    embedding_params: tuple  # parameter names of token / position embeddings (O(1) init)
    expect_cfg: dict  # TL cfg entries the checkpoint must produce (asserted on both loaders)
    flags: list = field(default_factory=lambda: list(FLAG_SETTERS))


def pythia_config():
    return GPTNeoXConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, intermediate_size=128,
        num_hidden_layers=3, max_position_embeddings=N_CTX, rotary_pct=0.5, rotary_emb_base=10000,
        use_parallel_residual=True, hidden_act="gelu", layer_norm_eps=1e-5, tie_word_embeddings=False,
        attention_bias=True, bos_token_id=0, eos_token_id=0, architectures=["GPTNeoXForCausalLM"],
    )


FAMILIES = [
    Family(
        model_id="EleutherAI/pythia-70m",
        architecture="GPTNeoXForCausalLM",
        seed=2001,
        config=pythia_config,
        tokenizer=TokenizerSpec(eot_id=0, tokenizer_class="GPTNeoXTokenizer",
                                fast_class="GPTNeoXTokenizerFast", normalizer="NFC"),
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
    ),
]


# ----------------------------------------------------------------------------- tokenizer
def build_tokenizer(spec):
    """Byte-level BPE on make_fixtures.TRAIN_TEXT (512 ids) with <|endoftext|> at spec.eot_id.

    Never adds special tokens by itself (encode("") == []); whether TL's tokenizer does is up to
    the tokenizer class (TL reloads it with add_bos_token=True)."""
    if spec.eot_id == VOCAB_SIZE - 1 and spec.normalizer is None:
        return mf.build_tokenizer()  # GPT-2's layout
    assert spec.eot_id == 0, "special token at 0 or at the end only"
    tok = Tokenizer(models.BPE())
    if spec.normalizer == "NFC":
        tok.normalizer = normalizers.NFC()
    else:
        assert spec.normalizer is None, spec.normalizer
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        special_tokens=[EOT],  # the trainer puts its special tokens first: <|endoftext|> = 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([mf.TRAIN_TEXT], trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    assert tok.token_to_id(EOT) == 0
    assert tok.encode("").ids == [], "tokenizer must not add special tokens"
    assert tok.encode(EOT).ids == [0], "<|endoftext|> must be a special (added) token"
    return tok


def write_tokenizer_files(spec, tok, snap):
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    mf.write_json(snap / "tokenizer_config.json", {
        "tokenizer_class": spec.tokenizer_class,
        "add_prefix_space": False,
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "model_max_length": N_CTX,
        "clean_up_tokenization_spaces": False,
    })
    mf.write_json(snap / "special_tokens_map.json", {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT})


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
    assert hf_tok.bos_token_id == hf_tok.eos_token_id == hf_tok.unk_token_id == spec.eot_id
    assert hf_tok.pad_token is None
    assert len(hf_tok) == VOCAB_SIZE
    assert hf_tok("").input_ids == [], "the tokenizer as saved must not add special tokens"
    ids = hf_tok(mf.PROMPT).input_ids
    assert hf_tok.decode(ids) == mf.PROMPT
    # What TL will see: it reloads the tokenizer with add_bos_token=True.
    tl_tok = AutoTokenizer.from_pretrained(fam.model_id, add_bos_token=True)
    return hf_model, ids, tl_tok("").input_ids


def check_tl_cfg(fam, model):
    cfg = model.cfg
    for k, v in fam.expect_cfg.items():
        assert getattr(cfg, k) == v, f"{fam.model_id}: cfg.{k} = {getattr(cfg, k)!r}, expected {v!r}"
    if cfg.positional_embedding_type == "rotary":
        assert cfg.rotary_dim < cfg.d_head, "the fixture must exercise partial rotary"


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


def main():
    ids = [fam.model_id for fam in FAMILIES]
    assert len(set(ids)) == len(ids) and not set(ids) & {m for m, *_ in mf.MODELS}
    mf.clean_model_dirs(ids)
    for fam in FAMILIES:
        write_checkpoint(fam, build_tokenizer(fam.tokenizer))

    for fam in FAMILIES:
        hf_model, prompt_ids, tl_empty = check_hf_loading(fam)
        print(f"[tokenizer] {fam.model_id}: prompt -> {len(prompt_ids)} tokens; "
              f"with add_bos_token=True encode('') -> {tl_empty}")
        for mode in mf.MODES:
            check_tl_cfg(fam, mf.load_tl(fam.model_id, mode))
            mf.golden_mode(fam.model_id, mode, hf_model)  # asserts TL unprocessed == HF logits
        mf.golden_flags(fam.model_id, "flags", fam.flags)
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
