"""16-bit goldens for HookedEncoder: TransformerLens 2.16.1 run with dtype bfloat16 and float16 on
the BERT fixture (the checkpoint bert_fixtures.py writes; run that first).

Writes __test__/fixtures/golden/google-bert__bert-base-cased/encoder_{bfloat16,float16}.{json,safetensors}:
  batch.logits        MLM logits of the right-padded batch (bert_fixtures.BATCH, TL's to_tokens
                      and one_zero_attention_mask), cast to float32 for storage
  batch.last_resid    blocks.{n-1}.hook_normalized_resid_post
  batch.pattern0      blocks.0.attn.hook_pattern
  nsp.logits          BertNextSentencePrediction on bert_fixtures.PAIR
and in the JSON the dtype of every cached hook in TL's order (`hook_dtypes`) and of every
state-dict entry (`state_dict_dtypes`). The float32 references are encoder.safetensors' (same
inputs), so a test measures its own 16-bit error next to TL's.

Run: /work/tlref/bin/python scripts/reference/encoder_dtype_fixtures.py
"""
import bert_fixtures as bf  # offline HF environment on the fixture hub first
import torch
from transformer_lens import BertNextSentencePrediction, HookedEncoder

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def golden(label):
    model = HookedEncoder.from_pretrained(bf.MODEL_ID, device="cpu", dtype=DTYPES[label])
    tokens, tti, mask = model.to_tokens(bf.BATCH)
    logits, cache = model.run_with_cache(tokens, token_type_ids=tti, one_zero_attention_mask=mask)
    n = model.cfg.n_layers
    tensors = {
        "batch.tokens": tokens,
        "batch.attention_mask": mask,
        "batch.logits": logits.float(),
        "batch.last_resid": cache[f"blocks.{n - 1}.hook_normalized_resid_post"].float(),
        "batch.pattern0": cache["blocks.0.attn.hook_pattern"].float(),
        "nsp.logits": BertNextSentencePrediction(model)(bf.PAIR).float(),
    }
    meta = {
        "model": bf.MODEL_ID,
        "dtype": label,
        "cfg_dtype": str(model.cfg.dtype).replace("torch.", ""),
        "hook_dtypes": {k: dtype_name(v) for k, v in cache.items()},
        "state_dict_dtypes": {k: dtype_name(v) for k, v in model.state_dict().items()},
        "versions": {p: bf.version(p) for p in ["torch", "transformer_lens", "transformers"]},
    }
    out = bf.GOLDEN / bf.MODEL_ID.replace("/", "__")
    bf.write_json(out / f"encoder_{label}.json", meta)
    bf.save_tensors(out / f"encoder_{label}.safetensors", tensors)
    print(label, "ok:", len(tensors), "tensors,", len(meta["hook_dtypes"]), "hooks")


if __name__ == "__main__":
    for label in DTYPES:
        golden(label)
