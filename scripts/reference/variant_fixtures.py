"""Second checkpoints of families whose first fixture does not cover a config variant that
sweep_families.py found mishandled (regression fixtures; entries of make_family_fixtures.py).

Each is a small Family under another official id of the same architecture, with the variant
set and everything else close to the family's first fixture (2 layers to keep the goldens
small). TL unprocessed must still equal HF (make_family_fixtures asserts it), so only variants
TL honours go here; variants TL ignores or refuses are covered by sweep_families.py and the
refusal tests.
  EleutherAI/pythia-14m  GPT-NeoX with tie_word_embeddings (the file has no embed_out.weight:
                         TL's W_U is W_E through HF's tying), rotary_pct 0.25 (rotary_dim 2)
  microsoft/phi-1_5      Phi with tie_word_embeddings (no lm_head.weight, lm_head.bias kept),
                         partial_rotary_factor 0.25 (rotary_dim 2)
"""
from transformers import GPTNeoXConfig, MixtralConfig, PhiConfig

import make_fixtures as mf

VOCAB_SIZE = mf.VOCAB_SIZE
N_CTX = mf.N_CTX


def tied_pythia_config():
    return GPTNeoXConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, intermediate_size=64,
        num_hidden_layers=2, max_position_embeddings=N_CTX, rotary_pct=0.25, rotary_emb_base=10000,
        use_parallel_residual=True, hidden_act="gelu_fast", layer_norm_eps=1e-5,
        tie_word_embeddings=True, attention_bias=True, bos_token_id=0, eos_token_id=0,
        architectures=["GPTNeoXForCausalLM"],
    )


def tied_phi_config():
    return PhiConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=N_CTX, partial_rotary_factor=0.25,
        rope_theta=10000.0, hidden_act="gelu_new", layer_norm_eps=1e-5, qk_layernorm=False,
        tie_word_embeddings=True, bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1,
        architectures=["PhiForCausalLM"],
    )


def top1_mixtral_config():
    return MixtralConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=16, num_hidden_layers=2, max_position_embeddings=N_CTX, rms_norm_eps=1e-5,
        hidden_act="silu", rope_theta=10000.0, sliding_window=None, num_local_experts=8,
        num_experts_per_tok=1, router_jitter_noise=0.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=None, architectures=["MixtralForCausalLM"],
    )


def families(Family, neox_tokenizer, phi_tokenizer, ln_modes, llama_tokenizer, rms_modes):
    common = {"d_model": 32, "n_heads": 4, "d_head": 8, "n_layers": 2, "n_ctx": N_CTX,
              "d_vocab": VOCAB_SIZE, "eps": 1e-5, "positional_embedding_type": "rotary",
              "rotary_dim": 2, "rotary_adjacent_pairs": False, "parallel_attn_mlp": True,
              "default_prepend_bos": True, "tokenizer_prepends_bos": True}
    return [
        Family(
            model_id="EleutherAI/pythia-14m", architecture="GPTNeoXForCausalLM", seed=2701,
            config=tied_pythia_config, tokenizer=neox_tokenizer,
            embedding_params=("gpt_neox.embed_in.weight",),
            expect_cfg={**common, "d_mlp": 64, "act_fn": "gelu_fast", "rotary_base": 10000,
                        "original_architecture": "GPTNeoXForCausalLM"},
            expect_mode_cfg=ln_modes,
        ),
        Family(
            model_id="microsoft/phi-1_5", architecture="PhiForCausalLM", seed=2711,
            config=tied_phi_config, tokenizer=phi_tokenizer,
            embedding_params=("model.embed_tokens.weight",),
            expect_cfg={**common, "d_mlp": 56, "act_fn": "gelu_new", "rotary_base": 10000.0,
                        "original_architecture": "PhiForCausalLM", "trust_remote_code": True},
            expect_mode_cfg=ln_modes,
        ),
        Family(
            model_id="mistralai/Mixtral-8x7B-Instruct-v0.1", architecture="MixtralForCausalLM",
            seed=2721, config=top1_mixtral_config, tokenizer=llama_tokenizer,
            embedding_params=("model.embed_tokens.weight",),
            expect_cfg={"d_model": 32, "n_heads": 4, "d_head": 8, "n_layers": 2, "d_mlp": 16,
                        "n_key_value_heads": 2, "num_experts": 8, "experts_per_token": 1,
                        "original_architecture": "MixtralForCausalLM"},
            expect_mode_cfg=rms_modes,
        ),
    ]
