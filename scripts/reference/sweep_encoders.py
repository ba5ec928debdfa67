#!/usr/bin/env python
"""Config-variant sweep of HookedEncoder (BERT) and HookedEncoderDecoder (T5) against TL 2.16.1
and, for T5's decoder, HF transformers (a dev tool, not a test).

Usage:  /work/tlref/bin/python scripts/reference/sweep_encoders.py OUT_DIR [FILTER ...]
        node --import tsx scripts/reference/sweep_encoder_compare.ts OUT_DIR [FILTER ...]

For every variant in VARIANTS (bert_fixtures.py's / t5_fixtures.py's tiny random checkpoint with
HF config fields or tokenizer_config.json entries changed, under an official TL id; FILTER
substrings select variants by name), writes OUT_DIR/{variant}/:
  hub/            the checkpoint in the HF hub-cache layout
  tl.safetensors  BERT: tokens, token types and masks, MLM logits of one prompt and of a
                  right-padded batch (with accents, CJK and punctuation), of a prompt longer
                  than n_ctx (truncated), every hook of the batch ("cache.{name}"), NSP logits of
                  two pairs and the pooler / NSP hooks ("nsp{i}.*").
                  T5: tokens and masks, logits of one prompt with a 14-token decoder input,
                  every hook of it ("cache.{name}"), a padded batch ("batch.*", every hook),
                  a string's logits and greedy generation of the padded batch; the decoder
                  self-attention made HF's (t5_fixtures.fix_decoder: causal, unidirectional
                  buckets), as the library computes it.
  tl.json         the variant, TL's cfg, hook names, predictions, max |diff| against HF
                  (what TL reads differently from HF shows here), or the error TL (or HF) raised
                  and whether from_pretrained or the first forward raised it ("tl_error_stage";
                  the tensors written before it stay).
"""
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import t5_fixtures as t5f  # noqa: E402  (make_fixtures sets the offline HF environment first)
import bert_fixtures as bf  # noqa: E402
from sweep_main import run_sweep, write_variant  # noqa: E402

import huggingface_hub.constants as hub_constants  # noqa: E402
import torch  # noqa: E402
import transformers.utils.hub as tf_hub  # noqa: E402
from transformers import BertForPreTraining, T5ForConditionalGeneration  # noqa: E402
from transformer_lens import BertNextSentencePrediction, HookedEncoder, HookedEncoderDecoder  # noqa: E402

mf = t5f.mf
BERT_CASED, BERT_UNCASED, BERT_LARGE = "google-bert/bert-base-cased", "google-bert/bert-base-uncased", "google-bert/bert-large-cased"
T5_SMALL, T5_BASE = "google-t5/t5-small", "google-t5/t5-base"

# Text the tokenizers normalize differently: accents, capitals, CJK, punctuation, a [MASK].
TEXT = "Héllo, WORLD! The Café naïve fox [MASK] 你好 über-cool (dog) ... déjà vu?"
EXTRA_VOCAB = "Héllo hello Café café naïve naive über uber déjà deja 你 好 ü é ï à"
BERT_BATCH = bf.BATCH + [TEXT]
PAIRS = [bf.PAIR, [TEXT, "The DOG chased the ball."]]
LONG = " ".join([bf.PAIR[0]] * 8)  # longer than every variant's n_ctx
T5_PROMPTS = [t5f.PROMPT, t5f.PROMPT2]
T5_LONG = " ".join([t5f.PROMPT] * 3)
GEN = 6

LOWER = {"_tok": {"lowercase": True}, "_tok_cfg": {"do_lower_case": True}}
# (variant, official id, HF config overrides); "_tok" are build_tokenizer's arguments,
# "_tok_cfg" tokenizer_config.json entries (None removes one).
VARIANTS = [
    ("bert-base", BERT_CASED, {}),
    ("bert-eps", BERT_CASED, {"layer_norm_eps": 1e-3}),
    ("bert-gelu-new", BERT_CASED, {"hidden_act": "gelu_new"}),
    ("bert-relu", BERT_CASED, {"hidden_act": "relu"}),
    ("bert-silu", BERT_CASED, {"hidden_act": "silu"}),
    ("bert-inter40", BERT_CASED, {"intermediate_size": 40}),
    ("bert-heads2", BERT_CASED, {"num_attention_heads": 2}),
    ("bert-heads8", BERT_CASED, {"num_attention_heads": 8}),
    ("bert-heads3-d36", BERT_CASED, {"num_attention_heads": 3, "hidden_size": 36}),
    ("bert-heads3-d32", BERT_CASED, {"num_attention_heads": 3}),
    ("bert-types1", BERT_CASED, {"type_vocab_size": 1}),
    ("bert-types3", BERT_CASED, {"type_vocab_size": 3}),
    ("bert-ctx16", BERT_CASED, {"max_position_embeddings": 16}),
    ("bert-vocab-big", BERT_CASED, {"vocab_size": 300}),
    ("bert-relkey", BERT_CASED, {"position_embedding_type": "relative_key"}),
    ("bert-relkeyquery", BERT_CASED, {"position_embedding_type": "relative_key_query"}),
    ("bert-untied", BERT_CASED, {"tie_word_embeddings": False}),
    ("bert-uncased", BERT_UNCASED, LOWER),
    ("bert-uncased-extra", BERT_UNCASED, {**LOWER, "_tok": {"lowercase": True, "extra_text": EXTRA_VOCAB}}),
    ("bert-cased-extra", BERT_CASED, {"_tok": {"extra_text": EXTRA_VOCAB}}),
    ("bert-no-do-lower-case", BERT_CASED, {"_tok": {"extra_text": EXTRA_VOCAB}, "_tok_cfg": {"do_lower_case": None}}),
    ("bert-strip-accents", BERT_CASED, {"_tok": {"extra_text": EXTRA_VOCAB}, "_tok_cfg": {"strip_accents": True}}),
    ("bert-no-chinese", BERT_CASED, {"_tok": {"extra_text": EXTRA_VOCAB}, "_tok_cfg": {"tokenize_chinese_chars": False}}),
    ("bert-large", BERT_LARGE, {"hidden_size": 48, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 80}),
    ("t5-base", T5_SMALL, {}),
    ("t5-dkv12", T5_SMALL, {"d_kv": 12}),
    ("t5-heads3", T5_SMALL, {"num_heads": 3}),
    ("t5-declayers3", T5_SMALL, {"num_decoder_layers": 3}),
    ("t5-declayers1", T5_SMALL, {"num_decoder_layers": 1}),
    ("t5-buckets8", T5_SMALL, {"relative_attention_num_buckets": 8}),
    ("t5-maxdist4", T5_SMALL, {"relative_attention_max_distance": 4}),
    ("t5-buckets16-dist8", T5_SMALL, {"relative_attention_num_buckets": 16, "relative_attention_max_distance": 8}),
    ("t5-gated-gelu", T5_SMALL, {"feed_forward_proj": "gated-gelu"}),
    ("t5-gated-silu", T5_SMALL, {"feed_forward_proj": "gated-silu"}),
    ("t5-gelu", T5_SMALL, {"feed_forward_proj": "gelu"}),
    ("t5-silu", T5_SMALL, {"feed_forward_proj": "silu"}),
    ("t5-gelu-new", T5_SMALL, {"feed_forward_proj": "gelu_new"}),
    ("t5-untied", T5_SMALL, {"tie_word_embeddings": False}),
    ("t5-eps", T5_SMALL, {"layer_norm_epsilon": 1e-3}),
    ("t5-maxlen40", T5_SMALL, {"_json": {"max_length": 40}}),
    ("t5-maxlen-null", T5_SMALL, {"_json": {"max_length": None}}),
    ("t5-maxdist12", T5_SMALL, {"relative_attention_max_distance": 12}),
    ("t5-buckets64", T5_SMALL, {"relative_attention_num_buckets": 64, "relative_attention_max_distance": 40}),
    ("t5-start5", T5_SMALL, {"decoder_start_token_id": 5}),
    ("t5-base-id", T5_BASE, {"d_model": 48, "num_heads": 6, "d_ff": 96, "num_layers": 3, "num_decoder_layers": 3}),
]


def use_hub(hub):
    """Points both fixture modules, huggingface_hub and transformers at `hub`."""
    shutil.rmtree(hub, ignore_errors=True)
    hub.mkdir(parents=True)
    mf.HUB = bf.HUB = hub
    mf.GOLDEN = bf.GOLDEN = hub.parent / "golden"  # never the committed goldens
    hub_constants.HF_HUB_CACHE = str(hub)
    tf_hub.TRANSFORMERS_CACHE = str(hub)
    os.environ["HF_HUB_CACHE"] = str(hub)


def max_diff(a, b):
    return (a - b).abs().max().item() if a.shape == b.shape else f"shapes {list(a.shape)} vs {list(b.shape)}"


# ----------------------------------------------------------------------------- BERT
def write_bert(model_id, overrides):
    tok = bf.build_tokenizer(**overrides.get("_tok", {}))
    cfg = {k: v for k, v in overrides.items() if not k.startswith("_")}
    bf.write_checkpoint(model_id, cfg, tok, overrides.get("_tok_cfg"))


def run_bert(model_id, t, meta):
    model = HookedEncoder.from_pretrained(model_id, device="cpu")
    meta["cfg"] = mf.cfg_json(model)
    for key, inp in [("single", bf.PROMPT), ("batch", BERT_BATCH), ("long", LONG)]:
        tokens, tti, mask = model.to_tokens(inp)
        t.update({f"{key}.tokens": tokens, f"{key}.token_type_ids": tti, f"{key}.attention_mask": mask})
        t[f"{key}.logits"] = model(inp)
    meta["str_tokens"] = [model.tokenizer.convert_ids_to_tokens(r) for r in t["batch.tokens"].tolist()]
    meta["predictions"] = {"single": model(bf.PROMPT, return_type="predictions"), "batch": model(BERT_BATCH, return_type="predictions")}
    _, cache = model.run_with_cache(BERT_BATCH)
    meta["hook_names"] = list(cache.keys())
    for name in cache.keys():
        t[f"cache.{name}"] = cache[name]
    nsp = BertNextSentencePrediction(model)
    meta["nsp_predictions"] = []
    for i, pair in enumerate(PAIRS):
        tokens, tti, mask = nsp.to_tokens(pair)
        t.update({f"nsp{i}.tokens": tokens, f"nsp{i}.token_type_ids": tti})
        logits, cache = nsp.run_with_cache(pair)
        t[f"nsp{i}.logits"] = logits
        for name in ("pooler.hook_pooler_out", "nsp_head.hook_nsp_out"):
            t[f"nsp{i}.cache.{name}"] = cache[name]
        meta["nsp_predictions"].append(nsp(pair, return_type="predictions"))
    try:  # HF on the same tokens: what TL reads differently from HF shows here
        hf = BertForPreTraining.from_pretrained(model_id, attn_implementation="eager").eval()
        out = hf(input_ids=t["batch.tokens"], token_type_ids=t["batch.token_type_ids"], attention_mask=t["batch.attention_mask"])
        nsp_hf = hf(input_ids=t["nsp0.tokens"], token_type_ids=t["nsp0.token_type_ids"]).seq_relationship_logits
        meta["tl_vs_hf"] = {"mlm": max_diff(out.prediction_logits, t["batch.logits"]), "nsp": max_diff(nsp_hf, t["nsp0.logits"])}
    except Exception as e:
        meta["tl_vs_hf"] = f"HF raises {type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- T5
def write_t5(model_id, overrides):
    """"_json" entries go into config.json as written (T5Config drops a max_length it is given)."""
    t5f.write_checkpoint(t5f.build_tokenizer(), model_id, {k: v for k, v in overrides.items() if k != "_json"})
    if "_json" in overrides:
        path = mf.snapshot_dir(model_id) / "config.json"
        mf.write_json(path, {**json.loads(path.read_text()), **overrides["_json"]})


def decoder_input(vocab):
    return [i % vocab for i in t5f.DECODER_INPUT]


def run_t5(model_id, t, meta):
    tl = HookedEncoderDecoder.from_pretrained(model_id, device="cpu")
    meta["cfg"] = mf.cfg_json(tl)
    fixed = t5f.fix_decoder(HookedEncoderDecoder.from_pretrained(model_id, device="cpu"))
    hf = T5ForConditionalGeneration.from_pretrained(model_id).eval()
    tokens, mask = tl.to_tokens(T5_PROMPTS[0])
    b_tokens, b_mask = tl.to_tokens(T5_PROMPTS)
    t.update({"tokens": tokens, "mask": mask, "batch.tokens": b_tokens, "batch.mask": b_mask, "long.tokens": tl.to_tokens(T5_LONG)[0]})
    dec = torch.tensor([decoder_input(tl.cfg.d_vocab)])
    b_dec = torch.tensor([decoder_input(tl.cfg.d_vocab)[:10], decoder_input(tl.cfg.d_vocab)[2:12]])
    t.update({"decoder_input": dec, "batch.decoder_input": b_dec})
    logits, cache = fixed.run_with_cache(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    t["logits"] = logits
    meta["hook_names"] = list(cache.keys())
    for name in cache.keys():
        t[f"cache.{name}"] = cache[name]
    b_logits, b_cache = fixed.run_with_cache(b_tokens, decoder_input=b_dec, one_zero_attention_mask=b_mask)
    t["batch.logits"] = b_logits
    for name in b_cache.keys():
        t[f"batch.cache.{name}"] = b_cache[name]
    t["str.logits"] = fixed(T5_PROMPTS[0])
    t["gen"] = fixed.generate(b_tokens, one_zero_attention_mask=b_mask, max_new_tokens=GEN, do_sample=False, stop_at_eos=False, verbose=False)
    hf_gen = hf.generate(input_ids=b_tokens, attention_mask=b_mask, max_new_tokens=GEN, do_sample=False, num_beams=1, eos_token_id=[], pad_token_id=0)
    meta["gen_hf"] = hf_gen.tolist()
    hf_logits = hf(input_ids=tokens, attention_mask=mask, decoder_input_ids=dec).logits
    hf_b = hf(input_ids=b_tokens, attention_mask=b_mask, decoder_input_ids=b_dec).logits
    meta["fixed_vs_hf"] = {"single": max_diff(logits, hf_logits), "batch": max_diff(b_logits, hf_b), "gen_equal": hf_gen.tolist() == t["gen"].tolist()}
    meta["tl_own_vs_hf"] = max_diff(tl(tokens, decoder_input=dec, one_zero_attention_mask=mask), hf_logits)


# ----------------------------------------------------------------------------- driver
def sweep_variant(out, name, model_id, overrides):
    root = out / name
    bert = model_id.startswith("google-bert/")
    inputs = ({"single": bf.PROMPT, "batch": BERT_BATCH, "long": LONG, "pairs": PAIRS} if bert
              else {"prompts": T5_PROMPTS, "long": T5_LONG})
    meta = {"variant": name, "model_id": model_id, "kind": "bert" if bert else "t5", "overrides": overrides, "inputs": inputs}
    use_hub(root / "hub")
    try:
        (write_bert if bert else write_t5)(model_id, overrides)
    except Exception as e:  # HF refuses the config itself: nothing to compare
        meta["hf_error"] = f"{type(e).__name__}: {e}"
        mf.write_json(root / "tl.json", meta)
        print(f"[{name}] HF refuses: {meta['hf_error']}")
        return
    t = {}
    try:
        (run_bert if bert else run_t5)(model_id, t, meta)
    except Exception as e:
        meta["tl_error"] = f"{type(e).__name__}: {e}"
        meta["tl_error_stage"] = "run" if "cfg" in meta else "load"  # forward raised / from_pretrained did
        meta["tl_traceback"] = traceback.format_exc(limit=-3)
        print(f"[{name}] TL raises ({meta['tl_error_stage']}): {meta['tl_error']}")
    else:
        hf = meta.get("tl_vs_hf", meta.get("fixed_vs_hf"))
        print(f"[{name}] TL ok; vs HF {hf}; {len(t)} tensors")
    write_variant(mf, root, meta, t)


if __name__ == "__main__":
    sys.exit(run_sweep(VARIANTS, sweep_variant))
