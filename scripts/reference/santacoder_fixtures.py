"""SantaCoder (`GPT2LMHeadCustomModel`) entry of make_family_fixtures.py.

bigcode/santacoder is remote code: its config.json's `auto_map` points at
`configuration_gpt2_mq.GPT2CustomConfig` and `modeling_gpt2_mq.GPT2LMHeadCustomModel`, files HF
fetches from the hub, which are not available offline. The fixture ships its own remote code
instead, santacoder_remote/: the real module, class and parameter names (`q_attn`
`[d_model, d_model]` and `kv_attn` `[d_model, 2 * head_dim]` Conv1D, one shared K/V head) and the
real multi-query forward (see modeling_gpt2_mq.py's docstring). Both classes are registered for
AutoConfig / AutoModelForCausalLM, so save_pretrained copies the two files into the snapshot and
writes config.json's auto_map as the real repository has it. HF and TL then load the checkpoint
from the hub cache like any other (TL always passes trust_remote_code=True for
bigcode/santacoder), and TL's own `convert_coder_weights` produces the goldens.

Chosen over building the HF model here and handing it to TL as `hf_model`: that way TL's loading
path is untouched (AutoConfig and AutoModelForCausalLM with remote code), the comparison of TL
with HF is against the model as loaded from the files, and the port reads the same files.

The checkpoint sets scale_attn_by_inverse_layer_idx (the real santacoder has it off) so that the
field, which TL reads from config.json for this architecture, changes the numbers.
"""
from santacoder_remote.configuration_gpt2_mq import GPT2CustomConfig
from santacoder_remote.modeling_gpt2_mq import GPT2LMHeadCustomModel

import make_fixtures as mf

VOCAB_SIZE = mf.VOCAB_SIZE
N_CTX = mf.N_CTX
EOT = mf.EOT
SANTACODER_ID = "bigcode/santacoder"
# santacoder's tokenizer: <|endoftext|> (bos, eos, unk) then the FIM tokens after the learned
# vocabulary.
FIM = ("<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>")

GPT2CustomConfig.register_for_auto_class()
GPT2LMHeadCustomModel.register_for_auto_class("AutoModelForCausalLM")


def santacoder_config():
    return GPT2CustomConfig(
        attention_head_type="multiquery", vocab_size=VOCAB_SIZE, n_positions=N_CTX, n_embd=32,
        n_layer=3, n_head=4, n_inner=128, activation_function="gelu_fast", layer_norm_epsilon=1e-5,
        scale_attn_by_inverse_layer_idx=True, scale_attn_weights=True, tie_word_embeddings=True,
        bos_token_id=VOCAB_SIZE - 5, eos_token_id=VOCAB_SIZE - 5,
        architectures=["GPT2LMHeadCustomModel"],
    )


def families(Family, TokenizerSpec, ln_tiny, ln_modes):
    tokenizer = TokenizerSpec(
        fast_class="GPT2TokenizerFast", front=(), back=(EOT, *FIM),
        config={"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "bos_token": EOT,
                "eos_token": EOT, "unk_token": EOT, "additional_special_tokens": [EOT, *FIM],
                "model_max_length": N_CTX, "clean_up_tokenization_spaces": False},
        special_tokens_map={"bos_token": EOT, "eos_token": EOT, "unk_token": EOT,
                            "additional_special_tokens": [EOT, *FIM]},
        ids=(VOCAB_SIZE - 5, VOCAB_SIZE - 5, VOCAB_SIZE - 5, None), saved_empty=[],
    )
    return [
        Family(
            model_id=SANTACODER_ID,
            architecture="GPT2LMHeadCustomModel",
            seed=2611,
            config=santacoder_config,
            tokenizer=tokenizer,
            embedding_params=("transformer.wte.weight", "transformer.wpe.weight"),
            expect_cfg={
                **ln_tiny, "d_mlp": 128, "act_fn": "gelu_fast", "positional_embedding_type": "standard",
                "use_attn_scale": True, "attn_scale": 8 ** 0.5, "scale_attn_by_inverse_layer_idx": True,
                "use_local_attn": False, "parallel_attn_mlp": False, "n_key_value_heads": None,
                "original_architecture": "GPT2LMHeadCustomModel", "trust_remote_code": True,
                "tokenizer_prepends_bos": False,
            },
            expect_mode_cfg=ln_modes,
            hf_model_class=GPT2LMHeadCustomModel,
            conv1d=True,
        ),
    ]
