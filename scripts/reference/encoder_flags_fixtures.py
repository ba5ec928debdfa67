#!/usr/bin/env python
"""TL 2.16.1's hook flags on HookedEncoder (BERT) and HookedEncoderDecoder (T5), on the tiny
checkpoints bert_fixtures.py and t5_fixtures.py wrote (run those first; this reads them only).

Usage:  /work/tlref/bin/python scripts/reference/encoder_flags_fixtures.py

TL has no set_use_* methods on these classes: the flags are set as TL's users set them,
`model.cfg.use_attn_result = True` (on every cfg object of the model: fix_decoder gives the
decoder's self-attention a copy).

Writes (float32; only the flagged hooks, the logits and the cache key order):
  __test__/fixtures/golden/google-bert__bert-base-cased/flags.{json,safetensors}
      use_attn_result + use_split_qkv_input + use_hook_mlp_in on a padded batch of two
      prompts: the cache's key order, hook_{q,k,v}_input, attn.hook_result, hook_mlp_in of
      every block, the MLM logits (== flags off), the NSP logits of a pair (== flags off), and
      the logits with head 0 of blocks.0.hook_q_input zeroed.
  __test__/fixtures/golden/google-t5__t5-small/flags.{json,safetensors}
      two runs, `split` (use_attn_result + use_split_qkv_input + use_hook_mlp_in) and `attn_in`
      (use_attn_in): the key order, every flagged hook, ln1's hooks of block 0 (TL normalises
      the per-head inputs: [b, p, h, 1] / [b, p, h, d], three calls, the cache keeps the last),
      the logits, and logits under an edit (head 0 of encoder.0/decoder.0.hook_q_input zeroed;
      decoder.0.hook_cross_attn_in plus 1).

The T5 decoder is t5_fixtures' `fixed` TL (HF's causal self-attention; see that script).

Where TL 2.16.1 fails: its decoder cross-attention gets 3-D inputs but, under use_attn_in or
use_split_qkv_input, projects them with complex_attn_linear (4-D einsum) and raises. The port
fires hook_cross_attn_in (use_attn_in) on a copy of resid_mid as TL's T5Block intends and runs
the cross-attention as with the flags off. The goldens come from TL with exactly that change
(each decoder cross_attn gets a cfg copy with use_attn_in / use_split_qkv_input off;
use_attn_result stays on, so cross_attn.hook_result fires); the script checks that the flagged
logits equal the flags-off logits (HF's) before it writes them.
"""
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import t5_fixtures as t5f  # noqa: E402  (imports make_fixtures: offline HF env first)
import make_fixtures as mf  # noqa: E402

import torch  # noqa: E402
from transformer_lens import BertNextSentencePrediction, HookedEncoder, HookedEncoderDecoder  # noqa: E402

torch.set_grad_enabled(False)

BERT_ID = "google-bert/bert-base-cased"
BERT_BATCH = ["The [MASK] sat on the mat", "She [MASK] to the store today"]
BERT_PAIR = ["The quick brown fox jumps over the lazy dog.", "It was a sunny day."]
BERT_FLAGGED = ("hook_q_input", "hook_k_input", "hook_v_input", "attn.hook_result", "hook_mlp_in")
T5_FLAGGED = BERT_FLAGGED + ("hook_attn_in", "hook_cross_attn_in", "cross_attn.hook_result", "0.ln1.hook_scale", "0.ln1.hook_normalized")


def set_flags(model, **flags):
    """`model.cfg.<flag> = value` on every cfg object the model's modules hold."""
    for cfg in {id(m.cfg): m.cfg for m in model.modules() if hasattr(m, "cfg")}.values():
        for k, v in flags.items():
            setattr(cfg, k, v)


def zero_head0(x, hook):
    x = x.clone()
    x[:, :, 0] = 0
    return x


def maxdiff(a, b):
    return (a - b).abs().max().item()


def bert():
    model = HookedEncoder.from_pretrained(BERT_ID, device="cpu")
    tokens, tti, mask = model.to_tokens(BERT_BATCH)
    base = model(tokens, token_type_ids=tti, one_zero_attention_mask=mask)
    nsp = BertNextSentencePrediction(model)
    nsp_base = nsp(BERT_PAIR)
    set_flags(model, use_attn_result=True, use_split_qkv_input=True, use_hook_mlp_in=True)
    logits, cache = model.run_with_cache(tokens, token_type_ids=tti, one_zero_attention_mask=mask)
    assert maxdiff(logits, base) < 1e-5, maxdiff(logits, base)
    t = {"tokens": tokens, "token_type_ids": tti, "attention_mask": mask, "logits": logits}
    t.update({f"cache.{k}": v for k, v in cache.items() if k.endswith(BERT_FLAGGED)})
    nsp_logits = nsp(BERT_PAIR)
    assert maxdiff(nsp_logits, nsp_base) < 1e-5
    t["nsp.logits"] = nsp_logits
    edited = model.run_with_hooks(tokens, token_type_ids=tti, one_zero_attention_mask=mask, fwd_hooks=[("blocks.0.hook_q_input", zero_head0)])
    assert maxdiff(edited, base) > 1e-3
    t["edit.logits"] = edited
    out = mf.GOLDEN / mf.slug(BERT_ID)
    info = {
        "model_id": BERT_ID, "versions": mf.versions(), "prompts": BERT_BATCH, "pair": BERT_PAIR,
        "flags": ["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in"],
        "hook_names": list(cache.keys()), "edit": "blocks.0.hook_q_input[:, :, 0] = 0",
    }
    info["converted"] = mf.save_tensors(out / "flags.safetensors", t)
    mf.write_json(out / "flags.json", info)
    print("bert ok", len(t), "tensors")


def t5_model(**flags):
    """t5_fixtures' fixed TL with `flags` set, and its cross-attention as with the input flags off."""
    model = HookedEncoderDecoder.from_pretrained("t5-small", device="cpu")
    set_flags(model, **flags)
    model = t5f.fix_decoder(model)
    for block in model.decoder:
        cfg = copy.copy(block.cross_attn.cfg)
        cfg.use_attn_in = False
        cfg.use_split_qkv_input = False
        block.cross_attn.cfg = cfg
    return model


def t5_run(model, tokens, mask, dec, base, t, prefix, edits):
    logits, cache = model.run_with_cache(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    assert maxdiff(logits, base) < 1e-5, (prefix, maxdiff(logits, base))
    t[f"{prefix}.logits"] = logits
    t.update({f"{prefix}.cache.{k}": v for k, v in cache.items() if k.endswith(T5_FLAGGED)})
    for i, (name, fn) in enumerate(edits):
        edited = model.run_with_hooks(tokens, decoder_input=dec, one_zero_attention_mask=mask, fwd_hooks=[(name, fn)])
        assert maxdiff(edited, base) > 1e-4, (name, maxdiff(edited, base))
        t[f"{prefix}.edit{i}.logits"] = edited
    return list(cache.keys()), [name for name, _ in edits]


def t5():
    base_model = t5_model()
    tokens, mask = base_model.to_tokens(t5f.PROMPT)
    dec = torch.tensor([t5f.DECODER_INPUT])
    base = base_model(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    hf = t5f.T5ForConditionalGeneration.from_pretrained(t5f.MODEL_ID).eval()
    assert maxdiff(base, hf(input_ids=tokens, attention_mask=mask, decoder_input_ids=dec).logits) < 1e-5
    # TL as it is fails in the cross-attention under the input flags.
    for flag in ("use_attn_in", "use_split_qkv_input"):
        plain = HookedEncoderDecoder.from_pretrained("t5-small", device="cpu")
        set_flags(plain, **{flag: True})
        try:
            plain(tokens, decoder_input=dec, one_zero_attention_mask=mask)
            raise AssertionError(f"TL no longer fails under {flag}: record it as it is")
        except RuntimeError:
            pass
    t = {"tokens": tokens, "mask": mask, "decoder_input": dec, "logits": base}
    info = {"model_id": t5f.MODEL_ID, "versions": mf.versions(), "prompt": t5f.PROMPT, "runs": {}}
    plus_one = lambda x, hook: x + 1.0  # noqa: E731
    runs = {
        "split": ({"use_attn_result": True, "use_split_qkv_input": True, "use_hook_mlp_in": True},
                  [("encoder.0.hook_q_input", zero_head0), ("decoder.0.hook_q_input", zero_head0)]),
        "attn_in": ({"use_attn_in": True},
                    [("encoder.0.hook_attn_in", zero_head0), ("decoder.0.hook_cross_attn_in", plus_one)]),
    }
    for name, (flags, edits) in runs.items():
        keys, edit_names = t5_run(t5_model(**flags), tokens, mask, dec, base, t, name, edits)
        info["runs"][name] = {"flags": sorted(flags), "hook_names": keys, "edits": edit_names}
    out = mf.GOLDEN / mf.slug(t5f.MODEL_ID)
    info["edits"] = {"zero_head0": "x[:, :, 0] = 0", "plus_one": "x + 1"}
    info["converted"] = mf.save_tensors(out / "flags.safetensors", t)
    mf.write_json(out / "flags.json", info)
    print("t5 ok", len(t), "tensors")


if __name__ == "__main__":
    bert()
    t5()
