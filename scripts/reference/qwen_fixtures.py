"""Qwen v1 (`QWenLMHeadModel`) entry of make_family_fixtures.py.

Qwen/Qwen-1_8B is remote code: its config.json's `auto_map` points at
`configuration_qwen.QWenConfig` and `modeling_qwen.QWenLMHeadModel`, files HF fetches from the
hub, which are not available offline. As for santacoder (santacoder_fixtures.py), the fixture
ships its own remote code, qwen_remote/: the real module, class and parameter names
(`transformer.wte`, `h.{i}.ln_1`, `attn.c_attn` fused QKV with bias, `attn.c_proj` without,
`ln_2`, `mlp.w1` / `w2` / `c_proj` of intermediate_size // 2, `ln_f`, an untied `lm_head`) and
the real forward (RMSNorm, rotary on halves over kv_channels, c_proj(w1(x) * silu(w2(x)))); see
modeling_qwen.py's docstring. Both classes are registered for AutoConfig / AutoModelForCausalLM,
so save_pretrained copies the two files into the snapshot and writes config.json's auto_map as
the real repository has it. TL loads "Qwen/Qwen-" ids with trust_remote_code (its
NEED_REMOTE_CODE_MODELS), reads config.json through AutoConfig, and its own
`convert_qwen_weights` produces the goldens.

The tokenizer is not Qwen v1's: the real one is tiktoken-based remote code (`QWenTokenizer`,
qwen.tiktoken, no tokenizer.json). The fixture ships the byte-level BPE layout of the Qwen2
fixture (<|endoftext|>, <|im_start|>, <|im_end|> after the learned vocabulary, as in Qwen v1's
vocabulary; nothing added to "" so TL's tokenizer_prepends_bos is False, as QWenTokenizer gives).

intermediate_size is 96, so TL's d_mlp (intermediate_size // 2) is 48; kv_channels is d_head
(8), as in every real Qwen v1 (TL takes rotary_dim from kv_channels).
"""
from qwen_remote.configuration_qwen import QWenConfig
from qwen_remote.modeling_qwen import QWenLMHeadModel

import make_fixtures as mf

VOCAB_SIZE = mf.VOCAB_SIZE
QWEN_ID = "Qwen/Qwen-1_8B"

QWenConfig.register_for_auto_class()
QWenLMHeadModel.register_for_auto_class("AutoModelForCausalLM")


def qwen_config():
    return QWenConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        kv_channels=8, intermediate_size=96, layer_norm_epsilon=1e-6, max_position_embeddings=8192,
        seq_length=2048, scale_attn_weights=True, rotary_pct=1.0, rotary_emb_base=10000,
        use_dynamic_ntk=True, use_logn_attn=True, no_bias=True, tie_word_embeddings=False,
        initializer_range=0.02, architectures=["QWenLMHeadModel"],
    )


def families(Family, tokenizer, rms_modes):
    return [
        Family(
            model_id=QWEN_ID,
            architecture="QWenLMHeadModel",
            seed=2631,
            config=qwen_config,
            tokenizer=tokenizer,
            embedding_params=("transformer.wte.weight",),
            expect_cfg={
                "d_model": 32, "n_heads": 4, "d_head": 8, "n_layers": 3, "d_vocab": VOCAB_SIZE,
                "act_fn": "silu", "gated_mlp": True, "positional_embedding_type": "rotary",
                "rotary_dim": 8, "rotary_base": 10000, "rotary_adjacent_pairs": False,
                "parallel_attn_mlp": False, "use_attn_scale": True, "attn_scale": 8 ** 0.5,
                "n_key_value_heads": None, "d_mlp": 48, "n_ctx": 2048, "eps": 1e-6,
                "final_rms": True, "original_architecture": "QWenLMHeadModel",
                "trust_remote_code": True, "default_prepend_bos": False,
                # TL's cfg says True; set_tokenizer recomputes it from encode("").
                "tokenizer_prepends_bos": False,
            },
            expect_mode_cfg=rms_modes,
            hf_model_class=QWenLMHeadModel,
        ),
    ]
