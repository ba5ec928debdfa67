#!/usr/bin/env python
"""Regression fixtures for the encoder config variants sweep_encoders.py found the library
reading differently from TL 2.16.1 (T5's decoder: HF's self-attention, as t5_fixtures.py).

Usage:  /work/tlref/bin/python scripts/reference/encoder_variant_fixtures.py

Writes (tiny random checkpoints, sweep_encoders.py's inputs and goldens):
  hub/models--google-bert--bert-base-uncased   BERT whose tokenizer_config.json does not say
      do_lower_case (transformers' BertTokenizerFast then lowercases a cased tokenizer.json),
      position_embedding_type 'relative_key_query' and hidden_act 'relu' (TL ignores both:
      absolute positions, gelu), untied MLM decoder, 8 heads of 4, small n_ctx.
  hub/models--google-t5--t5-base   T5 with feed_forward_proj 'gelu_new', tie_word_embeddings
      false (TL unembeds with the shared embedding, unscaled, leaving lm_head out),
      num_decoder_layers 3 > num_layers 2 (TL converts decoder blocks 0..1), d_kv 12,
      16 buckets up to distance 20, layer_norm_epsilon 1e-3.
  golden/{slug}/variant.{json,safetensors}   TL's outputs (sweep_encoders.run_bert / run_t5),
      under "refusals" configs TL cannot load with the error it raised, under "run_refusals"
      configs whose first forward TL cannot run.
"""
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep_encoders as se  # noqa: E402

import huggingface_hub.constants as hub_constants  # noqa: E402
import json  # noqa: E402
import torch  # noqa: E402
import transformers.utils.hub as tf_hub  # noqa: E402
from transformers import T5ForConditionalGeneration  # noqa: E402

mf, bf = se.mf, se.bf
HUB = mf.FIXTURES / "hub"
GOLDEN = mf.FIXTURES / "golden"

BERT = ("google-bert/bert-base-uncased", {
    "position_embedding_type": "relative_key_query", "hidden_act": "relu", "tie_word_embeddings": False,
    "num_attention_heads": 8, "intermediate_size": 40, "max_position_embeddings": 24,
    "_tok": {"extra_text": se.EXTRA_VOCAB}, "_tok_cfg": {"do_lower_case": None},
})
T5 = ("google-t5/t5-base", {
    "feed_forward_proj": "gelu_new", "tie_word_embeddings": False, "num_decoder_layers": 3, "d_kv": 12,
    "relative_attention_num_buckets": 16, "relative_attention_max_distance": 20, "layer_norm_epsilon": 1e-3,
})
# Configs TL cannot load (each on the variant above): the library must refuse them naming the key.
# "_json" entries go into config.json as written (T5Config would drop a null max_length).
REFUSALS = {
    BERT[0]: [{"type_vocab_size": 1}, {"type_vocab_size": 3}],
    T5[0]: [{"feed_forward_proj": "gated-gelu"}, {"feed_forward_proj": "gated-silu"}, {"feed_forward_proj": "quick_gelu"},
            {"num_decoder_layers": 1}, {"_json": {"max_length": None}}],
}
# Configs TL loads but whose first forward raises (the relative-position buckets: 16 buckets up to
# distance 4 put a distance of 4 in the encoder at log(1) / log(1), NaN, which torch's embedding
# cannot index): the library must throw in forward, naming the key.
RUN_REFUSALS = {BERT[0]: [], T5[0]: [{"relative_attention_max_distance": 4}]}


def set_hub(hub):
    mf.HUB = bf.HUB = hub
    mf.GOLDEN = bf.GOLDEN = GOLDEN
    hub_constants.HF_HUB_CACHE = str(hub)
    tf_hub.TRANSFORMERS_CACHE = str(hub)
    os.environ["HF_HUB_CACHE"] = str(hub)


def tl_refusals(model_id, base, changes, stage):
    """TL's error on each of `changes` (the checkpoint written with that config), raised by
    from_pretrained (`stage` "load") or by the first forward ("run")."""
    out = []
    tmp = Path(tempfile.mkdtemp(prefix="tl-encoder-refusals-"))
    for i, change in enumerate(changes):
        se.sweep_variant(tmp, f"r{i}", model_id, {**base, **change})
        meta = json.loads((tmp / f"r{i}" / "tl.json").read_text())
        err = meta.get("tl_error") or meta.get("hf_error")
        assert err and meta.get("tl_error_stage", "load") == stage, (change, err, meta.get("tl_error_stage"))
        out.append({"config": change.get("_json", change), "tl_error": err})
    shutil.rmtree(tmp)
    return out


def hf_as_tl(model_id):
    """HF's T5 reading the checkpoint as TL does: num_layers decoder blocks, the shared embedding
    as the (unscaled, untied) unembedding. Its logits must be the goldens' (TL's encoder and
    conversion, HF's decoder self-attention)."""
    hf = T5ForConditionalGeneration.from_pretrained(model_id).eval()
    conf = copy.deepcopy(hf.config)
    conf.num_decoder_layers = conf.num_layers
    m = T5ForConditionalGeneration(conf).eval()
    m.load_state_dict(hf.state_dict(), strict=False)
    m.lm_head.weight.copy_(hf.shared.weight)
    return m


def check_t5(model_id, t):
    m = hf_as_tl(model_id)
    single = m(input_ids=t["tokens"], attention_mask=t["mask"], decoder_input_ids=t["decoder_input"]).logits
    batch = m(input_ids=t["batch.tokens"], attention_mask=t["batch.mask"], decoder_input_ids=t["batch.decoder_input"]).logits
    d = max((single - t["logits"]).abs().max().item(), (batch - t["batch.logits"]).abs().max().item())
    scale = t["logits"].abs().max().item()  # unscaled logits (untied): fp32 rounding relative to them
    assert d < 1e-6 * max(scale, 10.0), (d, scale)
    gen = m.generate(input_ids=t["batch.tokens"], attention_mask=t["batch.mask"], max_new_tokens=se.GEN, do_sample=False,
                     num_beams=1, eos_token_id=[], pad_token_id=0)
    assert gen.tolist() == t["gen"].tolist(), (gen, t["gen"])
    return d


def fixture(model_id, overrides):
    bert = model_id.startswith("google-bert/")
    refusals = tl_refusals(model_id, overrides, REFUSALS[model_id], "load")
    run_refusals = tl_refusals(model_id, overrides, RUN_REFUSALS[model_id], "run")
    set_hub(HUB)
    (se.write_bert if bert else se.write_t5)(model_id, overrides)
    t = {}
    meta = {"model_id": model_id, "overrides": overrides, "refusals": refusals, "run_refusals": run_refusals}
    meta["inputs"] = ({"single": bf.PROMPT, "batch": se.BERT_BATCH, "long": se.LONG, "pairs": se.PAIRS} if bert
                      else {"prompts": se.T5_PROMPTS, "long": se.T5_LONG})
    (se.run_bert if bert else se.run_t5)(model_id, t, meta)
    if not bert:
        meta["hf_as_tl_max_abs_diff"] = check_t5(model_id, t)
    meta["versions"] = mf.versions()
    out = GOLDEN / mf.slug(model_id)
    out.mkdir(parents=True, exist_ok=True)
    meta["converted"] = mf.save_tensors(out / "variant.safetensors", t)
    mf.write_json(out / "variant.json", meta)
    for stray in [p for p in HUB.rglob("*") if p.name in (".locks", ".no_exist")]:
        shutil.rmtree(stray, ignore_errors=True)
    print(model_id, len(t), "tensors;", {k: v for k, v in meta.items() if k in ("tl_vs_hf", "fixed_vs_hf", "hf_as_tl_max_abs_diff")})


def main():
    torch.manual_seed(0)
    for model_id, overrides in (BERT, T5):
        fixture(model_id, overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
