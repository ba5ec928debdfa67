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

The tokenizer is Qwen v1's: tiktoken-based remote code (`QWenTokenizer`), which the fixture also
ships itself (qwen_remote/tokenization_qwen.py, a stand-in checked against the real file by
check_qwen_tokenizer.py) with a small `qwen.tiktoken` (qwen_tiktoken.py: 816 ranks, then the 208
special tokens, vocab_size 1024) and the real repos' tokenizer_config.json (class and auto_map
only); no tokenizer.json. TL loads it with trust_remote_code; nothing is added to "", so TL's
tokenizer_prepends_bos is False, and its set_tokenizer makes <|endoftext|> the eos, pad and bos.
qwen_tokenizer_fixtures.py records the tokenizer goldens.

intermediate_size is 96, so TL's d_mlp (intermediate_size // 2) is 48; kv_channels is d_head
(8), as in every real Qwen v1 (TL takes rotary_dim from kv_channels).
"""
import shutil
from pathlib import Path

from qwen_remote.configuration_qwen import QWenConfig
from qwen_remote.modeling_qwen import QWenLMHeadModel
from transformers import AutoTokenizer

import make_fixtures as mf
import qwen_tiktoken as qt

VOCAB_SIZE = qt.N_RANKS + qt.N_SPECIAL  # 1024: every id is a rank or a special token
QWEN_ID = "Qwen/Qwen-1_8B"
REMOTE = Path(__file__).resolve().parent / "qwen_remote"

QWenConfig.register_for_auto_class()
QWenLMHeadModel.register_for_auto_class("AutoModelForCausalLM")


def qwen_config():
    return QWenConfig(
        vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        kv_channels=8, intermediate_size=96, layer_norm_epsilon=1e-6, max_position_embeddings=8192,
        seq_length=2048, scale_attn_weights=True, rotary_pct=1.0, rotary_emb_base=10000,
        use_dynamic_ntk=True, use_logn_attn=True, no_bias=True, tie_word_embeddings=False,
        initializer_range=0.02, architectures=["QWenLMHeadModel"], tokenizer_class="QWenTokenizer",
    )


class QWenTiktokenSpec:
    """make_family_fixtures' tokenizer hooks for a tokenizer of its own (no tokenizer.json)."""

    def build(self):
        return qt.build_ranks()

    def write(self, ranks, snap):
        qt.write_tiktoken(ranks, snap / "qwen.tiktoken")
        shutil.copy(REMOTE / "tokenization_qwen.py", snap / "tokenization_qwen.py")
        mf.write_json(snap / "tokenizer_config.json", qt.TOKENIZER_CONFIG)

    def check(self, model_id):
        """AutoTokenizer (remote code) loads it; returns the prompt's ids and encode("") as TL loads it."""
        tok = AutoTokenizer.from_pretrained(model_id, trust_remote_code=True)
        assert type(tok).__name__ == "QWenTokenizer", type(tok)
        assert len(tok) == VOCAB_SIZE and tok.eod_id == qt.N_RANKS
        assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (None, None, None)
        ids = tok(mf.PROMPT).input_ids
        assert tok.decode(ids) == mf.PROMPT and tok("").input_ids == []
        tl_tok = AutoTokenizer.from_pretrained(model_id, add_bos_token=True, trust_remote_code=True)
        return ids, tl_tok("").input_ids


def families(Family, rms_modes):
    return [
        Family(
            model_id=QWEN_ID,
            architecture="QWenLMHeadModel",
            seed=2631,
            config=qwen_config,
            tokenizer=QWenTiktokenSpec(),
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
