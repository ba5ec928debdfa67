#!/usr/bin/env python
"""TransformerLens goldens for padding, attention masks, the KV cache and generate.

Usage:  python scripts/reference/make_generation_fixtures.py   (after make_fixtures.py)

Loads the tiny checkpoints make_fixtures.py fabricated (offline, from __test__/fixtures/hub)
and writes __test__/fixtures/golden/{slug}/generation.{json,safetensors} per model:
  left.*      prompts tokenized with padding_side="left": tokens, TL's attention mask, logits,
              loss and per-token loss (TL computes the mask itself)
  right.*     right-padded tokens run with an explicit attention_mask (logits, masked loss)
  single{i}.* each prompt alone (logits), for batched == unbatched checks backed by TL
  kv.*        the same tokens through the KV cache in two halves (single prompt and the
              left-padded batch): logits of each half, the cached keys/values of layer 0
  gen.*       greedy generate (do_sample=False) with and without the KV cache, with
              stop_at_eos on an id the greedy run produces, and with a list of eos ids
  embeds.*    greedy generate from embeddings (a batch of two), with and without the KV
              cache, returning tokens and embeddings; gen0.embeds: return_type="embeds"
              from text
"""
import contextlib
import io
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import torch
from transformer_lens import HookedTransformerKeyValueCache, utils

PROMPTS = ["The quick brown fox jumps", "Hi", "It was a sunny day. The dog"]
NEW = 10


def tl_generate(model, inp, **kw):
    return model.generate(inp, max_new_tokens=NEW, do_sample=False, return_type="tokens", verbose=False, **kw)


def golden_generation(model_id):
    model = mf.load_tl(model_id, "processed")
    tok = model.tokenizer
    t, meta = {}, {"prompts": PROMPTS, "new_tokens": NEW}

    # Left padding: TL builds the mask from the pad tokens and moves positions.
    left = model.to_tokens(PROMPTS, padding_side="left")
    t["left.tokens"] = left
    tok.padding_side = "left"
    t["left.mask"] = utils.get_attention_mask(tok, left, True)
    tok.padding_side = "right"
    t["left.logits"] = model(PROMPTS, padding_side="left")
    t["left.loss"] = model(PROMPTS, padding_side="left", return_type="loss")
    t["left.loss_per_token"] = model(PROMPTS, padding_side="left", return_type="loss", loss_per_token=True)

    # Right padding with an explicit mask.
    right = model.to_tokens(PROMPTS)
    rmask = utils.get_attention_mask(tok, right, True)
    t["right.tokens"], t["right.mask"] = right, rmask
    t["right.logits"] = model(right, attention_mask=rmask)
    t["right.loss"] = model(right, attention_mask=rmask, return_type="loss")
    t["right.loss_per_token"] = model(right, attention_mask=rmask, return_type="loss", loss_per_token=True)

    for i, p in enumerate(PROMPTS):
        t[f"single{i}.tokens"] = model.to_tokens(p)
        t[f"single{i}.logits"] = model(p)

    # KV cache in two halves.
    one = model.to_tokens(PROMPTS[0])
    k = one.shape[1] // 2
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
    t["kv.single.a"] = model(one[:, :k], past_kv_cache=cache)
    t["kv.single.b"] = model(one[:, k:], past_kv_cache=cache)
    t["kv.single.keys0"] = cache[0].past_keys
    t["kv.single.values0"] = cache[0].past_values
    t["kv.single.mask"] = cache.previous_attention_mask
    meta["kv_split"] = k
    kb = left.shape[1] // 2
    cache = HookedTransformerKeyValueCache.init_cache(model.cfg, model.cfg.device, len(PROMPTS))
    tok.padding_side = "left"
    t["kv.left.a"] = model(left[:, :kb], past_kv_cache=cache)
    t["kv.left.b"] = model(left[:, kb:], past_kv_cache=cache)
    tok.padding_side = "right"
    t["kv.left.mask"] = cache.previous_attention_mask
    meta["kv_left_split"] = kb

    # Greedy generation (single prompts: TL 2.x does not mask padding while generating).
    for i, p in enumerate(PROMPTS):
        t[f"gen{i}.kv"] = tl_generate(model, p, stop_at_eos=False)
        t[f"gen{i}.nokv"] = tl_generate(model, p, stop_at_eos=False, use_past_kv_cache=False)
    g0 = t["gen0.kv"][0]
    prompt_len = model.to_tokens(PROMPTS[0]).shape[1]
    eos = int(g0[prompt_len + 2])
    meta["eos_id"] = eos
    t["gen0.eos"] = tl_generate(model, PROMPTS[0], eos_token_id=eos)
    absent = next(x for x in range(500, 511) if x not in g0.tolist())
    eos_list = [absent, int(g0[prompt_len + 1])]
    meta["eos_ids"] = eos_list
    t["gen0.eos_list"] = tl_generate(model, PROMPTS[0], eos_token_id=eos_list)
    meta["gen0_str"] = model.generate(PROMPTS[0], max_new_tokens=NEW, do_sample=False, stop_at_eos=False, verbose=False)
    meta["gen_tokens_input"] = tl_generate(model, t["single2.tokens"], stop_at_eos=False).tolist()

    # From embeddings (TL's input_type "embeds"): the prompt's W_E rows, a batch of two.
    emb_tokens = model.to_tokens(PROMPTS[:1] * 2)
    emb_tokens[1, -1] = 7
    embeds = model.embed(emb_tokens)
    t["embeds.input"] = embeds
    t["embeds.kv"] = tl_generate(model, embeds, stop_at_eos=False)
    t["embeds.nokv"] = tl_generate(model, embeds, stop_at_eos=False, use_past_kv_cache=False)
    t["embeds.out"] = model.generate(embeds, max_new_tokens=NEW, do_sample=False, stop_at_eos=False, verbose=False)
    t["gen0.embeds"] = model.generate(PROMPTS[0], max_new_tokens=NEW, do_sample=False, stop_at_eos=False, verbose=False, return_type="embeds")

    # test_prompt's printed report (rich prints plain text when stdout is not a terminal).
    for key, answer in [("test_prompt", "jumps over"), ("test_prompt_multi", ["jumps", "runs", "the"])]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            utils.test_prompt("The quick brown fox", answer, model, top_k=5)
        meta[key] = buf.getvalue()

    out = mf.GOLDEN / mf.slug(model_id)
    out.mkdir(parents=True, exist_ok=True)
    meta["converted"] = mf.save_tensors(out / "generation.safetensors", t)
    meta["versions"] = mf.versions()
    mf.write_json(out / "generation.json", meta)
    print(f"[generation] {model_id}: {len(t)} tensors")


def main():
    torch.manual_seed(0)
    for model_id, *_ in mf.MODELS:
        golden_generation(model_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
