"""TL 2.16.1's Gemma config table, made to read a reduced Gemma's sizes from its config.json.

TL never reads config.json for names containing "gemma": `convert_hf_model_config` returns
hard-coded real-size dicts for `google/gemma-*`, and no other id reaches the Gemma
architectures. `install(snapshot_of)` patches `loading_from_pretrained.convert_hf_model_config`
for the two official ids used by the fixtures and the bench (`google/gemma-2b`,
`google/gemma-2-2b`): it takes TL's own hard-coded dict for the id and replaces the sizes (and
the fields derived from them) with the checkpoint's config.json values, by the rules the port's
`families/gemma.rs` `config()` applies to a Gemma folder of other sizes (see gemma_fixtures.py).
`snapshot_of(official_id)` gives the snapshot folder holding that config.json.
"""
import json

import transformer_lens.loading_from_pretrained as loading

GEMMA_ID = "google/gemma-2b"
GEMMA2_ID = "google/gemma-2-2b"
ORIGINAL = loading.convert_hf_model_config


def reduced_dict(official_name, hf):
    d = dict(ORIGINAL(official_name))
    d.update({
        "d_model": hf["hidden_size"], "d_head": hf["head_dim"], "n_heads": hf["num_attention_heads"],
        "d_mlp": hf["intermediate_size"], "n_layers": hf["num_hidden_layers"],
        "n_ctx": hf["max_position_embeddings"], "eps": hf["rms_norm_eps"], "d_vocab": hf["vocab_size"],
        "n_key_value_heads": hf["num_key_value_heads"], "rotary_base": hf["rope_theta"],
    })
    if official_name == GEMMA_ID:
        d["rotary_dim"] = hf["head_dim"]
    else:
        d["window_size"] = hf["sliding_window"]
        d["attn_types"] = ["global", "local"] * ((hf["num_hidden_layers"] + 1) // 2)
        if hf["query_pre_attn_scalar"] != hf["head_dim"]:
            d["attn_scale"] = float(hf["query_pre_attn_scalar"]) ** 0.5
        d["attn_scores_soft_cap"] = hf["attn_logit_softcapping"]
        d["output_logits_soft_cap"] = hf["final_logit_softcapping"]
    return d


def install(snapshot_of):
    """Patches TL for the two Gemma ids; returns the patched function."""
    def patched_convert_hf_model_config(model_name, **kwargs):
        official = loading.get_official_model_name(model_name)
        if official in (GEMMA_ID, GEMMA2_ID):
            hf = json.loads((snapshot_of(official) / "config.json").read_text())
            return reduced_dict(official, hf)
        return ORIGINAL(model_name, **kwargs)

    loading.convert_hf_model_config = patched_convert_hf_model_config
    return patched_convert_hf_model_config
