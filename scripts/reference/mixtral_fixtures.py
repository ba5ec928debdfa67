"""Mixtral entry of make_family_fixtures.py, and the one correction of TL's processed model.

TL 2.16.1 reads config.json for `mistralai/Mixtral-8x7B-v0.1` (its MixtralForCausalLM dict takes
every size from it; only `attn_types` is hard-coded, 32 x "global"), so the tiny checkpoint needs
no config patch. Unprocessed goldens are TL's unpatched `from_pretrained_no_processing`.

TL 2.16.1's `from_pretrained` (fold_ln) is wrong for MoE models: `get_pretrained_model_config`
turns RMS into RMSPre, but `load_and_process_state_dict` skips folding for `num_experts > 1`, so
every RMSNorm weight (ln1, ln2, ln_final) is silently dropped and the processed model computes a
different function. The port folds them correctly, so its "processed" goldens come from TL's
processed model with the norm weights folded as TL folds a dense RMS model's (ln1 into W_Q /
W_K / W_V, ln2 into the router `mlp.W_gate` and every expert's W_in and W_gate, ln_final into
W_U), done here on TL's own processed state dict before the goldens are taken (`load_tl` below).
Everything else (forward, hooks, routing, centring of W_U) is TL's unpatched code; the processed
logits then equal the unprocessed ones up to TL's W_U centring (asserted).
"""
import torch
from transformers import MixtralConfig

import make_fixtures as mf

MIXTRAL_ID = "mistralai/Mixtral-8x7B-v0.1"
N_EXPERTS = 4
TOP_K = 2


def mixtral_config():
    return MixtralConfig(
        vocab_size=mf.VOCAB_SIZE, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=24, num_hidden_layers=2, max_position_embeddings=mf.N_CTX, rms_norm_eps=1e-5,
        hidden_act="silu", rope_theta=1000000.0, sliding_window=None, num_local_experts=N_EXPERTS,
        num_experts_per_tok=TOP_K, router_jitter_noise=0.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=None, architectures=["MixtralForCausalLM"],
    )


@torch.no_grad()
def fold_norms(model, ref):
    """Folds `ref`'s (the unprocessed model's) RMSNorm weights into `model` (TL's processed one)."""
    sd, new = ref.state_dict(), model.state_dict()
    for l in range(model.cfg.n_layers):
        p = f"blocks.{l}"
        w1, w2 = sd[f"{p}.ln1.w"], sd[f"{p}.ln2.w"]
        for k in ("W_Q", "_W_K", "_W_V"):
            new[f"{p}.attn.{k}"] = sd[f"{p}.attn.{k}"] * w1[None, :, None]
        new[f"{p}.mlp.W_gate.weight"] = sd[f"{p}.mlp.W_gate.weight"] * w2[None, :]
        for e in range(model.cfg.num_experts):
            for k in ("W_in", "W_gate"):
                key = f"{p}.mlp.experts.{e}.{k}.weight"
                new[key] = sd[key] * w2[None, :]
    # TL's processed W_U is centred over the vocabulary; scaling its rows commutes with that.
    new["unembed.W_U"] = new["unembed.W_U"] * sd["ln_final.w"][:, None]
    model.load_state_dict(new)


def correct_processed(load):
    def wrapped(model_id, mode, **kwargs):
        model = load(model_id, mode, **kwargs)
        if mode == "processed" and (model.cfg.num_experts or 0) > 1:
            ref = load(model_id, "unprocessed", **kwargs)
            fold_norms(model, ref)
            tokens = ref.to_tokens(mf.PROMPT)
            with torch.no_grad():
                a, b = model(tokens), ref(tokens)
                centred = b - b.mean(-1, keepdim=True)
                gap = (a - centred).abs().max().item()
            assert gap < 1e-4, f"folded processed Mixtral differs from unprocessed by {gap}"
        return model
    return wrapped


def families(Family, LLAMA_TOKENIZER, RMS_GQA, RMS_MODES):
    return [
        Family(
            model_id=MIXTRAL_ID,
            architecture="MixtralForCausalLM",
            seed=2501,
            config=mixtral_config,
            tokenizer=LLAMA_TOKENIZER,
            embedding_params=("model.embed_tokens.weight",),
            expect_cfg={
                **RMS_GQA, "n_layers": 2, "d_mlp": 24, "n_ctx": mf.N_CTX, "eps": 1e-5,
                "rotary_base": 1000000.0, "final_rms": False, "use_local_attn": False,
                "window_size": None, "attn_types": ["global"] * 32, "num_experts": N_EXPERTS,
                "experts_per_token": TOP_K, "original_architecture": "MixtralForCausalLM",
                "default_prepend_bos": True, "tokenizer_prepends_bos": True,
            },
            expect_mode_cfg=RMS_MODES,
        ),
    ]
