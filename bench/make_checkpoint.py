#!/usr/bin/env python
"""Fabricate a GPT-2-small-shaped checkpoint with random weights for benchmarking.

Usage:  python bench/make_checkpoint.py [CACHE_DIR] [SHAPE]   (default: bench/.out/hub gpt2)

SHAPE is one of SHAPES below: `gpt2` (GPT-2 small, under the id `gpt2`), `pythia-160m`
(GPT-NeoX, Pythia-160m's dims, under `EleutherAI/pythia-160m`), `llama` (a ~110M-parameter
Llama: RMSNorm, gated SiLU MLP, grouped-query attention with 4 K/V heads for 12 query heads,
under `01-ai/Yi-6B`, an id whose dims TL reads from config.json), `gemma2` (a reduced Gemma 2
under `google/gemma-2-2b`; TL's side reads its sizes through bench/tl_patch.py), `mixtral`
(a reduced Mixtral: 8 experts, top-2), `t5-small` (t5-small's dims, under `google-t5/t5-small`)
or `bert` (BERT-base cased dims, BertForPreTraining weights, under
`google-bert/bert-base-cased`; the tokenizer is the BERT fixture's, 139 ids).

Writes the HuggingFace hub-cache layout, loadable with HF_HUB_OFFLINE=1 and
HF_HUB_CACHE=CACHE_DIR:
  CACHE_DIR/models--gpt2/refs/main                 (a fixed 40-hex revision)
  CACHE_DIR/models--gpt2/snapshots/{rev}/config.json, model.safetensors,
      tokenizer.json, tokenizer_config.json, special_tokens_map.json

The weights are random (GPT2LMHeadModel: 12 layers, n_embd 768, n_head 12,
n_positions 1024, vocab 50257, gelu_new), so timings match real GPT-2 small but
outputs are meaningless. The tokenizer is copied from the tiny test fixture
(512 ids); the bench feeds random token ids < 512, so that does not matter.
Does nothing if the files already exist.
"""
import glob
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REV = "b3e1c6d9a0f24e5c8d7b6a5f4e3d2c1b0a998877"
FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=50257, n_positions=1024, n_ctx=1024, n_embd=768, n_layer=12, n_head=12,
        activation_function="gelu_new", bos_token_id=50256, eos_token_id=50256,
        architectures=["GPT2LMHeadModel"],
    )


def pythia_config():
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=50304, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
        num_hidden_layers=12, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
        use_parallel_residual=True, hidden_act="gelu", layer_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0, architectures=["GPTNeoXForCausalLM"],
    )


def llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000, hidden_size=768, num_attention_heads=12, num_key_value_heads=4,
        intermediate_size=2048, num_hidden_layers=12, max_position_embeddings=2048, rms_norm_eps=1e-6,
        hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        architectures=["LlamaForCausalLM"],
    )


def gemma2_config():
    from transformers import Gemma2Config

    return Gemma2Config(
        vocab_size=32000, hidden_size=768, num_attention_heads=8, num_key_value_heads=4, head_dim=96,
        intermediate_size=3072, num_hidden_layers=12, max_position_embeddings=2048, rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0, query_pre_attn_scalar=96,
        sliding_window=512, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        architectures=["Gemma2ForCausalLM"],
    )


def mixtral_config():
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=32000, hidden_size=768, num_attention_heads=12, num_key_value_heads=4,
        intermediate_size=1024, num_hidden_layers=8, num_local_experts=8, num_experts_per_tok=2,
        max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=1e6, sliding_window=None,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, architectures=["MixtralForCausalLM"],
    )


def t5_config():
    from transformers import T5Config

    # t5-small's dims (relu MLP, tied embeddings, 32 buckets up to distance 128).
    return T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="relu",
        tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        architectures=["T5ForConditionalGeneration"],
    )


def bert_config():
    from transformers import BertConfig

    # BERT-base (cased): saved as BertForPreTraining (MLM + NSP heads), labelled BertForMaskedLM
    # as the real config.json is (what TL dispatches on).
    return BertConfig(
        vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0,
    )


# shape -> (model id, HF config, AutoModel class name, config.json architecture, tokenizer fixture)
SHAPES = {
    "gpt2": ("gpt2", gpt2_config, "GPT2LMHeadModel", None, "models--gpt2"),
    "pythia-160m": ("EleutherAI/pythia-160m", pythia_config, "GPTNeoXForCausalLM", None, "models--gpt2"),
    "llama": ("01-ai/Yi-6B", llama_config, "LlamaForCausalLM", None, "models--gpt2"),
    # TL hard-codes every Gemma name's real sizes; bench/tl_patch.py makes it read these.
    "gemma2": ("google/gemma-2-2b", gemma2_config, "Gemma2ForCausalLM", None, "models--gpt2"),
    "mixtral": ("mistralai/Mixtral-8x7B-v0.1", mixtral_config, "MixtralForCausalLM", None, "models--gpt2"),
    # T5 needs its pad / </s> ids: the T5 fixture's tokenizer.
    "t5-small": ("google-t5/t5-small", t5_config, "T5ForConditionalGeneration", None, "models--google-t5--t5-small"),
    "bert": ("google-bert/bert-base-cased", bert_config, "BertForPreTraining", "BertForMaskedLM", "models--google-bert--bert-base-cased"),
}


def main():
    cache = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_HUB", ROOT / "bench" / ".out" / "hub")).resolve()
    shape = sys.argv[2] if len(sys.argv) > 2 else "gpt2"
    model_id, make_config, class_name, architecture, tokenizer_fixture = SHAPES[shape]
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snap = repo / "snapshots" / REV
    if (repo / "refs" / "main").is_file() and all((snap / f).is_file() for f in FILES):
        print(f"checkpoint already at {snap}")
        return

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    import transformers

    fixtures = glob.glob(str(ROOT / "__test__" / "fixtures" / "hub" / tokenizer_fixture / "snapshots" / "*"))
    if not fixtures:
        sys.exit(f"tokenizer fixture not found under __test__/fixtures/hub/{tokenizer_fixture}/snapshots/")
    fixture = Path(fixtures[0])

    torch.manual_seed(1234)
    model = getattr(transformers, class_name)(make_config()).eval()

    snap.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(snap), safe_serialization=True)
    if architecture is not None:
        cfg_path = snap / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["architectures"] = [architecture]
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    # save_pretrained may also write generation_config.json; harmless.
    for name in TOKENIZER_FILES:
        shutil.copyfile(fixture / name, snap / name)
    # The fixture tokenizer caps inputs at its own n_ctx (64); lift it to 1024.
    tc_path = snap / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["model_max_length"] = make_config().to_dict().get("max_position_embeddings", 1024) if architecture else 1024
    tc_path.write_text(json.dumps(tc, indent=2) + "\n")

    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REV)
    missing = [f for f in FILES if not (snap / f).is_file()]
    if missing:
        sys.exit(f"save_pretrained did not write {missing}")
    size = (snap / "model.safetensors").stat().st_size
    print(f"wrote {snap} (model.safetensors {size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
