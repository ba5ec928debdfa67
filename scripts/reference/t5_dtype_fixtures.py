#!/usr/bin/env python
"""16-bit goldens for HookedEncoderDecoder (T5): TransformerLens 2.16.1 run with dtype bfloat16 and
float16 on the T5 fixture (the checkpoint t5_fixtures.py writes; run that first), with its decoder
self-attention made HF's (t5_fixtures.fix_decoder: causal, unidirectional buckets), as the port
computes it. TL's 16-bit rules (q and k upcast, scores and patterns in float32, RMSNorm statistics
in float32) are what the port follows there.

Writes __test__/fixtures/golden/google-t5__t5-small/t5_{bfloat16,float16}.{json,safetensors}:
  logits              the single prompt with t5_fixtures.DECODER_INPUT (float32 for storage)
  enc_last, dec_last  encoder.{n-1}.hook_resid_post, decoder.{n-1}.hook_resid_post
  pattern0            decoder.0.attn.hook_pattern
  batch.logits        the padded two-prompt batch with its decoder inputs
and in the JSON every cached hook's dtype in TL's order (`hook_dtypes`), every state-dict entry's
(`state_dict_dtypes`), greedy generation from the batch (`generate`) and each step's gap between
the top two logits of each row (`generate_top_gaps`), so a test asserts only the tokens a 16-bit
rounding cannot flip. The float32 references are t5.safetensors' (same inputs).

Run: /work/tlref/bin/python scripts/reference/t5_dtype_fixtures.py
"""
import t5_fixtures as tf  # offline HF environment on the fixture hub first
import torch
from transformer_lens import HookedEncoderDecoder

import make_fixtures as mf

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def greedy(model, tokens, mask, steps):
    """Greedy decoding from the pad token, recording each step's top-two gap per row."""
    dec = torch.zeros((tokens.shape[0], 1), dtype=torch.long)
    gaps = []
    for _ in range(steps):
        logits = model(tokens, decoder_input=dec, one_zero_attention_mask=mask)[:, -1].float()
        top = logits.topk(2, dim=-1).values
        gaps.append((top[:, 0] - top[:, 1]).tolist())
        dec = torch.cat([dec, logits.argmax(-1, keepdim=True)], dim=1)
    return dec, gaps


def golden(label):
    torch.set_grad_enabled(False)
    model = tf.fix_decoder(HookedEncoderDecoder.from_pretrained("t5-small", device="cpu", dtype=DTYPES[label]))
    tokens, mask = model.to_tokens(tf.PROMPT)
    dec = torch.tensor([tf.DECODER_INPUT])
    logits, cache = model.run_with_cache(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    n = model.cfg.n_layers
    b_tokens, b_mask = model.to_tokens([tf.PROMPT, tf.PROMPT2])
    b_dec = torch.tensor([tf.DECODER_INPUT[:10], tf.DECODER_INPUT[2:12]])
    gen, gaps = greedy(model, b_tokens, b_mask, tf.GEN_TOKENS)
    t = {
        "tokens": tokens,
        "mask": mask,
        "decoder_input": dec,
        "logits": logits.float(),
        "enc_last": cache[f"encoder.{n - 1}.hook_resid_post"].float(),
        "dec_last": cache[f"decoder.{n - 1}.hook_resid_post"].float(),
        "pattern0": cache["decoder.0.attn.hook_pattern"].float(),
        "batch.tokens": b_tokens,
        "batch.mask": b_mask,
        "batch.decoder_input": b_dec,
        "batch.logits": model(b_tokens, decoder_input=b_dec, one_zero_attention_mask=b_mask).float(),
    }
    info = {
        "model_id": tf.MODEL_ID,
        "dtype": label,
        "cfg_dtype": str(model.cfg.dtype).replace("torch.", ""),
        "hook_dtypes": {k: dtype_name(v) for k, v in cache.items()},
        "state_dict_dtypes": {k: dtype_name(v) for k, v in model.state_dict().items()},
        "generate": gen.tolist(),
        "generate_top_gaps": gaps,
        "versions": mf.versions(),
    }
    out = mf.GOLDEN / "google-t5__t5-small"
    info["converted"] = mf.save_tensors(out / f"t5_{label}.safetensors", t)
    mf.write_json(out / f"t5_{label}.json", info)
    print(label, "ok:", len(info["hook_dtypes"]), "hooks; generate", gen.tolist())


if __name__ == "__main__":
    for label in DTYPES:
        golden(label)
