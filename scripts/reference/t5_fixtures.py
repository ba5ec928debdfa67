#!/usr/bin/env python
"""Fabricate a tiny random T5 checkpoint (under the real id google-t5/t5-small, alias t5-small)
and record TransformerLens' HookedEncoderDecoder and HF transformers' outputs on it.

Usage:  python scripts/reference/t5_fixtures.py

Writes
  __test__/fixtures/hub/models--google-t5--t5-small/{refs/main, snapshots/{rev}/...}
  __test__/fixtures/golden/google-t5__t5-small/t5.{json,safetensors}

TL 2.16.1's decoder self-attention shares the encoder's settings: no causal mask and
bidirectional relative-position buckets, so its decoder differs from HF's at every decoder
position. The port follows HF there. The goldens hold:
  tl.*       TL as it is (encoder activations, cross-attention inputs, and TL's own decoder
             logits, which the port must NOT match);
  fixed.*    TL with its decoder self-attention made HF's (causal mask, unidirectional buckets):
             every hook TL has, under TL's names, with HF's numbers; checked here against HF's
             logits, decoder hidden states and attention patterns before it is written;
  hf.*       HF transformers' logits and greedy generation.
"""
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets the offline HF env before transformers loads)

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration  # noqa: E402
import transformer_lens.components.t5_attention as t5_attention  # noqa: E402
from transformer_lens import HookedEncoderDecoder  # noqa: E402

# TL 2.16.1 reads T5's n_ctx from `hf_config.max_length`, which transformers 4.x configs have
# (default 20: t5-small's config.json has none); transformers 5 dropped it from configs.
T5Config.max_length = 20

MODEL_ID = "google-t5/t5-small"
SEED = 5005
TOK_VOCAB = 250
D_VOCAB = 256  # real T5 pads its embedding past the tokenizer's vocabulary too (32128 > 32100)
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
PROMPT = "The quick brown fox jumps over the lazy dog."
PROMPT2 = "Hello world"
# Longer than 9 tokens: the decoder's bidirectional and unidirectional buckets differ from
# relative distance 8 on (and TL's missing causal mask shows at every position but the last).
DECODER_INPUT = [0, 17, 5, 42, 9, 100, 3, 77, 18, 64, 11, 250, 7, 33]
GEN_TOKENS = 6
BATCH_CACHE = ["encoder.0.attn.hook_pattern", "decoder.1.cross_attn.hook_pattern", "decoder.1.hook_resid_post", "encoder.1.hook_resid_post"]


def build_tokenizer():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=TOK_VOCAB, special_tokens=[PAD, EOS, UNK], unk_token=UNK, show_progress=False)
    tok.train_from_iterator([mf.TRAIN_TEXT], trainer=trainer)
    assert tok.token_to_id(PAD) == 0 and tok.token_to_id(EOS) == 1 and tok.token_to_id(UNK) == 2
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, 1)])
    assert tok.get_vocab_size() <= D_VOCAB
    return tok


def write_checkpoint(tok, model_id=MODEL_ID, overrides=None):
    """The checkpoint under `model_id`, its T5Config changed by `overrides`."""
    repo = mf.hub_repo_dir(model_id)
    snap = mf.snapshot_dir(model_id)
    if repo.exists():
        shutil.rmtree(repo)
    snap.mkdir(parents=True)
    (repo / "refs" / "main").parent.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(mf.revision(model_id))
    # As t5-small's config.json: no max_length (TL's n_ctx is then transformers' default 20),
    # feed_forward_proj relu, tied embeddings, decoder_start_token_id 0.
    config = T5Config(**{
        "vocab_size": D_VOCAB, "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "dropout_rate": 0.0,
        "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu", "tie_word_embeddings": True, "is_encoder_decoder": True,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "architectures": ["T5ForConditionalGeneration"],
        "n_positions": 512, **(overrides or {}),
    })
    torch.manual_seed(SEED)
    model = T5ForConditionalGeneration(config).eval()
    gen = torch.Generator().manual_seed(SEED + 1)
    for name, p in model.named_parameters():
        if p.dim() == 1:  # every 1-D parameter is an RMS norm weight: ~ 1 + 0.2 N(0,1)
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
        elif "relative_attention_bias" in name:
            p.copy_(torch.randn(p.shape, generator=gen))
        elif name.endswith("shared.weight"):
            p.copy_(torch.randn(p.shape, generator=gen))
        else:  # nn.Linear [out, in]
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    # A small <pad> embedding, so greedy decoding from the start token does not just repeat it
    # (tied embeddings make a random model predict its own input token).
    model.shared.weight[0].mul_(0.1)
    model.save_pretrained(str(snap), safe_serialization=True)
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    mf.write_json(snap / "tokenizer_config.json", {
        "tokenizer_class": "T5Tokenizer", "eos_token": EOS, "pad_token": PAD, "unk_token": UNK,
        "extra_ids": 0, "additional_special_tokens": [], "model_max_length": 512,
    })
    mf.write_json(snap / "special_tokens_map.json", {"eos_token": EOS, "pad_token": PAD, "unk_token": UNK})
    gc = snap / "generation_config.json"
    if gc.exists():
        gc.unlink()


# --------------------------------------------------------------------- TL with HF's decoder
def hf_bias(attn, q_len, k_len):
    """HF's decoder bias: unidirectional buckets."""
    ctx = torch.arange(q_len)[:, None]
    mem = torch.arange(k_len)[None, :]
    buckets = t5_attention.T5Attention._relative_position_bucket(
        mem - ctx, bidirectional=False, num_buckets=attn.relative_attention_num_buckets,
        max_distance=attn.relative_attention_max_distance)
    return attn.rel_pos_bias(buckets).permute([2, 0, 1]).unsqueeze(0)


def fix_decoder(model):
    """The decoder's self-attention as HF computes it: causal, unidirectional buckets."""
    import copy
    for block in model.decoder:
        cfg = copy.copy(block.attn.cfg)
        cfg.attention_dir = "causal"
        block.attn.cfg = cfg
    attn0 = model.decoder[0].attn
    attn0.compute_relative_attention_bias = lambda q, k, device=None: hf_bias(attn0, q, k)
    return model


def hf_decoder_activations(hf, ids, mask, dec):
    out = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, output_hidden_states=True, output_attentions=True)
    return out


def main():
    tok = build_tokenizer()
    write_checkpoint(tok)
    hf = T5ForConditionalGeneration.from_pretrained(MODEL_ID).eval()
    hf_tok = AutoTokenizer.from_pretrained(MODEL_ID)
    assert hf_tok.pad_token_id == 0 and hf_tok.eos_token_id == 1 and len(hf_tok) == tok.get_vocab_size()
    tl = HookedEncoderDecoder.from_pretrained("t5-small", device="cpu")
    fixed = fix_decoder(HookedEncoderDecoder.from_pretrained("t5-small", device="cpu"))
    assert tl.cfg.n_ctx == 20

    t = {}
    info = {"model_id": MODEL_ID, "alias": "t5-small", "versions": mf.versions()}
    # ---- tokenization
    tokens, mask = tl.to_tokens(PROMPT)
    b_tokens, b_mask = tl.to_tokens([PROMPT, PROMPT2])
    long_text = " ".join([PROMPT] * 3)
    long_tokens, _ = tl.to_tokens(long_text)
    assert long_tokens.shape[1] == 20 and long_tokens[0, -1].item() == 1  # HF truncation keeps </s>
    t.update({"tokens": tokens, "mask": mask, "batch.tokens": b_tokens, "batch.mask": b_mask, "long.tokens": long_tokens})
    info["prompts"] = {"single": PROMPT, "batch": [PROMPT, PROMPT2], "long": long_text}
    dec = torch.tensor([DECODER_INPUT])
    t["decoder_input"] = dec

    # ---- single prompt, long decoder input: every hook
    tl_logits, tl_cache = tl.run_with_cache(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    fx_logits, fx_cache = fixed.run_with_cache(tokens, decoder_input=dec, one_zero_attention_mask=mask)
    hf_out = hf_decoder_activations(hf, tokens, mask, dec)
    hf_logits = hf_out.logits
    d_fixed = (fx_logits - hf_logits).abs().max().item()
    d_tl = (tl_logits - hf_logits).abs().max().item()
    assert d_fixed < 1e-5, d_fixed
    assert d_tl > 0.05, d_tl
    for l in range(2):  # HF's decoder hidden states and patterns = the fixed TL's hooks
        assert (hf_out.decoder_hidden_states[l] - fx_cache[f"decoder.{l}.hook_resid_pre"]).abs().max() < 1e-5
        assert (hf_out.decoder_attentions[l] - fx_cache[f"decoder.{l}.attn.hook_pattern"]).abs().max() < 1e-5
        d = (hf_out.cross_attentions[l] - fx_cache[f"decoder.{l}.cross_attn.hook_pattern"]).abs().max(); assert d < 1e-5, d
        assert (hf_out.encoder_attentions[l] - tl_cache[f"encoder.{l}.attn.hook_pattern"]).abs().max() < 1e-5
    hook_names = list(fx_cache.keys())
    assert hook_names == list(tl_cache.keys())
    for name in hook_names:
        src = tl_cache if name.startswith("encoder") or name == "hook_embed" else fx_cache
        if name.startswith("encoder") or name == "hook_embed":
            assert torch.equal(tl_cache[name], fx_cache[name])
        t[f"cache.{name}"] = src[name]
    t["logits"] = fx_logits
    t["hf.logits"] = hf_logits
    t["tl.logits"] = tl_logits
    info["hook_names"] = hook_names
    info["all_hook_names"] = list(tl.hook_dict.keys())
    info["tl_vs_hf_logits_max_abs_diff"] = d_tl
    info["fixed_vs_hf_logits_max_abs_diff"] = d_fixed

    # ---- a short decoder input (the start token alone), as TL's tests: TL == HF there
    dec1 = torch.tensor([[0]])
    short = tl(tokens, decoder_input=dec1, one_zero_attention_mask=mask)
    assert (short - hf(input_ids=tokens, attention_mask=mask, decoder_input_ids=dec1).logits).abs().max() < 1e-5
    t["short.logits"] = short

    # ---- padded batch (right padding, the encoder mask), with the decoder input per row
    b_dec = torch.tensor([DECODER_INPUT[:10], DECODER_INPUT[2:12]])
    t["batch.decoder_input"] = b_dec
    b_logits, b_cache = fixed.run_with_cache(b_tokens, decoder_input=b_dec, one_zero_attention_mask=b_mask, names_filter=BATCH_CACHE)
    hf_b = hf(input_ids=b_tokens, attention_mask=b_mask, decoder_input_ids=b_dec).logits
    assert (b_logits - hf_b).abs().max() < 1e-5
    t["batch.logits"] = b_logits
    for name in BATCH_CACHE:
        t[f"batch.cache.{name}"] = b_cache[name]
    info["batch_cache_names"] = BATCH_CACHE
    # the same batch without a mask (TL: every token attended to)
    t["batch.nomask.logits"] = fixed(b_tokens, decoder_input=b_dec)
    # strings in: TL's forward starts the decoder with the pad token
    t["str.logits"] = fixed(PROMPT)
    assert torch.allclose(t["str.logits"], hf(input_ids=tokens, attention_mask=mask, decoder_input_ids=dec1).logits, atol=1e-5)

    # ---- greedy generation: HF's (the port follows it) and TL's own
    hf_gen = hf.generate(input_ids=b_tokens, attention_mask=b_mask, max_new_tokens=GEN_TOKENS, do_sample=False, num_beams=1, eos_token_id=[], pad_token_id=0)
    t["hf.generate"] = hf_gen
    fx_gen = fixed.generate(b_tokens, one_zero_attention_mask=b_mask, max_new_tokens=GEN_TOKENS, do_sample=False, stop_at_eos=False, verbose=False)
    assert torch.equal(fx_gen, hf_gen), (fx_gen, hf_gen)
    t["tl.generate"] = tl.generate(b_tokens, one_zero_attention_mask=b_mask, max_new_tokens=GEN_TOKENS, do_sample=False, stop_at_eos=False, verbose=False)
    # with EOS stopping and the string API (TL's default: stop_at_eos)
    info["generate_str"] = fixed.generate(PROMPT, max_new_tokens=GEN_TOKENS, do_sample=False, verbose=False)
    g1 = hf.generate(input_ids=tokens, attention_mask=mask, max_new_tokens=GEN_TOKENS, do_sample=False, num_beams=1)
    assert info["generate_str"] == hf_tok.decode(g1[0], skip_special_tokens=True)
    info["gen_tokens"] = GEN_TOKENS

    # ---- weights: TL's state dict (the conversion)
    sd = tl.state_dict()
    info["state_dict_keys"] = list(sd.keys())
    for k, v in sd.items():
        t[f"state_dict.{k}"] = v
    info["cfg"] = mf.cfg_json(tl)
    info["str_tokens"] = [hf_tok.decode([i]) for i in tokens[0].tolist()]

    out = mf.GOLDEN / "google-t5__t5-small"
    out.mkdir(parents=True, exist_ok=True)
    info["converted"] = mf.save_tensors(out / "t5.safetensors", t)
    mf.write_json(out / "t5.json", info)
    for stray in [p for p in mf.HUB.rglob("*") if p.name in (".locks", ".no_exist")]:
        shutil.rmtree(stray, ignore_errors=True)
    print("ok", d_tl, d_fixed, hf_gen.tolist(), t["tl.generate"].tolist())


if __name__ == "__main__":
    main()
