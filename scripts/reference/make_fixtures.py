#!/usr/bin/env python
"""Fabricate tiny random GPT-2 checkpoints + TransformerLens golden outputs.

Usage (from anywhere):  python scripts/reference/make_fixtures.py

Writes, deterministically (fixed seeds, pinned versions in requirements.txt):
  __test__/fixtures/hub/models--{org}--{name}/{refs/main, snapshots/{rev}/...}
      HuggingFace hub-cache layout; loadable with HF_HUB_OFFLINE=1 and
      HF_HUB_CACHE=__test__/fixtures/hub (or HF_HOME=__test__/fixtures).
  __test__/fixtures/golden/{slug}/{processed,unprocessed}.{safetensors,json}
  __test__/fixtures/golden/gpt2/{flags,attn_in,processed_options}.{safetensors,json}

All stored tensors are float32 except `*.tokens` (int64). Bool tensors (the
attention `mask` buffers) are stored as float32 0/1 and 0-d tensors as shape
[1]; each such conversion is listed under "converted" in the sibling JSON.
processed_options.safetensors omits weights bit-identical to processed.safetensors
(listed per variant under "same_as_processed" in processed_options.json).
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "__test__" / "fixtures"
HUB = FIXTURES / "hub"
GOLDEN = FIXTURES / "golden"

# Must be set before transformers / huggingface_hub are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(HUB)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tl-fixtures-hfhome-")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformer_lens import HookedTransformer  # noqa: E402

torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

# (model id, n_layer, extra HF config, seed)
MODELS = [
    ("gpt2", 3, {}, 1001),
    ("distilgpt2", 2, {}, 1002),
    ("stanford-crfm/alias-gpt2-small-x21", 2, {"scale_attn_by_inverse_layer_idx": True}, 1003),
]
MODES = ["processed", "unprocessed"]
VOCAB_SIZE = 512
EOT = "<|endoftext|>"
N_CTX = 64
PROMPT = "The quick brown fox jumps over the lazy dog. It was a sunny day."
PROMPT2 = "Hello world, this is a test"
BATCH_CACHE_NAMES = ["blocks.0.attn.hook_pattern", "blocks.1.hook_resid_post", "ln_final.hook_normalized"]
OPTION_SWITCHES = ["fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases"]

TRAIN_TEXT = """\
The quick brown fox jumps over the lazy dog. It was a sunny day, and the fox was happy.
The dog did not move. It was a lazy dog, and it liked to sleep in the sun all day long.
Hello world, this is a test. This is only a test of a very small language model.

Once upon a time there was a little village by the sea. The people of the village were
fishermen, and every morning they went out in their boats to catch fish. When the weather
was good the sea was calm and blue, but when a storm came the waves were high and dark.
The children of the village played on the beach and watched the boats come back in the
evening. They counted the fish and helped their parents carry the nets up to the houses.

In the spring the fields around the village turned green, and the farmers planted wheat
and corn. In the summer the sun was hot, and the days were long. In the autumn the leaves
fell from the trees, and the people gathered the harvest. In the winter it was cold, and
snow covered the hills. Families sat by the fire and told stories about the old days.

A model of language reads a sequence of tokens and predicts the next token. Each layer of
the transformer has an attention part and a feed forward part. The attention heads look
back at earlier positions, and the residual stream carries information from layer to
layer. Researchers study these models by looking at their activations and their weights,
and by patching the activations of one prompt into another prompt to see what changes.

She opened the window and looked at the garden. The flowers were red, yellow and white,
and the birds were singing in the trees. It was a quiet morning. He made a cup of tea,
read the news, and then walked to the station to take the train into the city. The city
was busy and loud, with cars, buses and people everywhere, but he liked the energy of it.
Numbers like 1, 2, 3, 10, 42 and 2024 appear in text too, as do symbols such as $, % and #.

The quick brown fox jumps over the lazy dog. It was a sunny day. Hello world, this is a test.
The quick brown fox jumps over the lazy dog. It was a sunny day. Hello world, this is a test.
"""


# ----------------------------------------------------------------------------- helpers
def slug(model_id):
    return model_id.replace("/", "__")


def revision(model_id):
    """A fixed 40-hex revision string per model."""
    return hashlib.sha1(f"transformer-lens-node-fixture:{model_id}".encode()).hexdigest()


def hub_repo_dir(model_id):
    return HUB / ("models--" + model_id.replace("/", "--"))


def snapshot_dir(model_id):
    return HUB / ("models--" + model_id.replace("/", "--")) / "snapshots" / revision(model_id)


def versions():
    return {p: version(p) for p in ["torch", "transformer_lens", "transformers"]}


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o):
    """JSON fallback: tensors -> lists, everything else (torch.dtype, torch.device, ...) -> str."""
    return o.tolist() if isinstance(o, torch.Tensor) else str(o)


def save_tensors(path, tensors):
    """Save as safetensors: floats -> float32, ints -> int64, bools -> float32, 0-d -> [1].

    Returns {key: "orig_dtype[orig_shape]"} for every tensor whose dtype/shape was changed."""
    out, converted = {}, {}
    for k, t in tensors.items():
        t = t.detach().cpu()
        orig = f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}"
        if t.dtype == torch.bool or t.is_floating_point():
            new = t.to(torch.float32)
        else:
            new = t.to(torch.int64)
        if new.dim() == 0:
            new = new.reshape(1)
        if new.dtype != t.dtype or new.shape != t.shape:
            converted[k] = orig
        out[k] = new.contiguous().clone()
    save_file(out, str(path), metadata={"format": "pt"})
    return converted


# ----------------------------------------------------------------------------- tokenizer
def build_tokenizer():
    """Byte-level BPE like GPT-2: 256 byte symbols + 255 merges, then <|endoftext|> = id 511."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    # Same as GPT-2's tokenizer.json: a ByteLevel post-processor that only fixes offsets
    # and never adds tokens (GPT-2 does not prepend BOS by itself).
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - 1,
        min_frequency=1,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([TRAIN_TEXT], trainer=trainer)
    assert tok.get_vocab_size() == VOCAB_SIZE - 1, tok.get_vocab_size()
    tok.add_special_tokens([EOT])
    assert tok.token_to_id(EOT) == VOCAB_SIZE - 1 and tok.get_vocab_size() == VOCAB_SIZE
    assert tok.encode("").ids == [], "tokenizer must not add special tokens"
    return tok


def write_tokenizer_files(tok, snap):
    tok.save(str(snap / "tokenizer.json"), pretty=True)
    write_json(snap / "tokenizer_config.json", {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "bos_token": EOT,
        "eos_token": EOT,
        "unk_token": EOT,
        "model_max_length": N_CTX,
        "clean_up_tokenization_spaces": False,
    })
    write_json(snap / "special_tokens_map.json", {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT})


# ----------------------------------------------------------------------------- checkpoints
def build_hf_model(n_layer, extra, seed):
    config = GPT2Config(
        vocab_size=VOCAB_SIZE, n_positions=N_CTX, n_ctx=N_CTX, n_embd=32, n_layer=n_layer, n_head=4,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
        bos_token_id=VOCAB_SIZE - 1, eos_token_id=VOCAB_SIZE - 1, architectures=["GPT2LMHeadModel"],
        **extra,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    for name, p in model.named_parameters():
        if p.dim() == 1:  # LayerNorm weights ~ 1 + 0.1 N(0,1); all biases ~ 0.1 N(0,1)
            is_ln_weight = ".ln_" in name and name.endswith(".weight")
            p.copy_((1.0 if is_ln_weight else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
        elif name.endswith("wte.weight") or name.endswith("wpe.weight"):
            # HF's std=0.02 init makes everything nearly uniform; use O(1)-ish signals instead.
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        else:  # Conv1D weights are [in, out]
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[0] ** 0.5)
    return model


def write_checkpoint(model_id, n_layer, extra, seed, tok):
    repo = hub_repo_dir(model_id)
    snap = snapshot_dir(model_id)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision(model_id))
    model = build_hf_model(n_layer, extra, seed)
    model.save_pretrained(str(snap), safe_serialization=True)
    write_tokenizer_files(tok, snap)


def check_hf_loading(model_id):
    """HF must load model + tokenizer offline from the fabricated cache. Returns (model, prompt ids).

    Eager attention: HF's SDPA path silently ignores scale_attn_by_inverse_layer_idx."""
    hf_model = GPT2LMHeadModel.from_pretrained(model_id, attn_implementation="eager").eval()
    hf_tok = AutoTokenizer.from_pretrained(model_id)
    assert type(hf_tok).__name__ == "GPT2TokenizerFast", type(hf_tok)
    assert hf_tok.eos_token_id == VOCAB_SIZE - 1 and hf_tok.bos_token_id == VOCAB_SIZE - 1
    assert hf_tok("").input_ids == []
    ids = hf_tok(PROMPT).input_ids
    assert hf_tok.decode(ids) == PROMPT
    return hf_model, ids


# ----------------------------------------------------------------------------- goldens
def load_tl(model_id, mode, **kwargs):
    if mode == "processed":
        return HookedTransformer.from_pretrained(model_id, device="cpu", **kwargs)
    assert mode == "unprocessed"
    return HookedTransformer.from_pretrained_no_processing(model_id, device="cpu", **kwargs)


def cfg_json(model):
    return json.loads(json.dumps(model.cfg.to_dict(), default=json_default))


def golden_mode(model_id, mode, hf_model):
    model = load_tl(model_id, mode)
    t = {}
    tokens = model.to_tokens(PROMPT)
    logits, cache = model.run_with_cache(tokens)
    loss = model(tokens, return_type="loss")
    t["single.tokens"] = tokens
    t["single.logits"] = logits
    t["single.loss"] = loss
    t["single.loss_per_token"] = model(tokens, return_type="loss", loss_per_token=True)
    hook_names = list(cache.keys())
    for name in hook_names:
        t[f"single.cache.{name}"] = cache[name]

    if mode == "unprocessed":  # sanity: TL without processing == HF exactly (up to fp error)
        hf_logits = hf_model(tokens).logits
        assert torch.allclose(hf_logits, logits, atol=1e-4, rtol=1e-4), (hf_logits - logits).abs().max()

    batch_tokens = model.to_tokens([PROMPT, PROMPT2])
    b_logits, b_cache = model.run_with_cache(batch_tokens, names_filter=BATCH_CACHE_NAMES)
    b_loss = model(batch_tokens, return_type="loss")
    t["batch.tokens"] = batch_tokens
    t["batch.logits"] = b_logits
    t["batch.loss"] = b_loss
    t["batch.loss_per_token"] = model(batch_tokens, return_type="loss", loss_per_token=True)
    for name in BATCH_CACHE_NAMES:
        t[f"batch.cache.{name}"] = b_cache[name]
    # Passing the list of strings directly must give the same logits as the token tensor.
    assert torch.allclose(model([PROMPT, PROMPT2]), b_logits)

    nobos = model.to_tokens(PROMPT, prepend_bos=False)
    t["nobos.tokens"] = nobos
    t["nobos.logits"] = model(nobos)

    for k, v in model.state_dict().items():
        t[f"state_dict.{k}"] = v

    resid = model(tokens, stop_at_layer=1)
    t["stop1.resid"] = resid
    t["start1.logits"] = model(resid, start_at_layer=1)
    assert torch.allclose(t["start1.logits"], logits, atol=1e-5)

    out_dir = GOLDEN / slug(model_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted = save_tensors(out_dir / f"{mode}.safetensors", t)
    write_json(out_dir / f"{mode}.json", {
        "model_id": model_id,
        "mode": mode,
        "loader": "from_pretrained" if mode == "processed" else "from_pretrained_no_processing",
        "hook_names": hook_names,
        "batch_cache_names": BATCH_CACHE_NAMES,
        "cfg": cfg_json(model),
        "prompts": {"single": PROMPT, "batch": [PROMPT, PROMPT2], "nobos": PROMPT},
        "str_tokens": model.to_str_tokens(PROMPT),
        "batch_str_tokens": [model.to_str_tokens(r) for r in batch_tokens],
        "loss": {"single": loss.item(), "batch": b_loss.item()},
        "state_dict_keys": list(model.state_dict().keys()),
        "converted": converted,
        "versions": versions(),
    })


def golden_flags(model_id, stem, setters):
    model = load_tl(model_id, "processed")
    for setter in setters:
        getattr(model, setter)(True)
    tokens = model.to_tokens(PROMPT)
    logits, cache = model.run_with_cache(tokens)
    t = {"tokens": tokens, "logits": logits}
    hook_names = list(cache.keys())
    for name in hook_names:
        t[f"cache.{name}"] = cache[name]
    out_dir = GOLDEN / slug(model_id)
    converted = save_tensors(out_dir / f"{stem}.safetensors", t)
    write_json(out_dir / f"{stem}.json", {
        "model_id": model_id,
        "loader": "from_pretrained",
        "flags": {s.replace("set_", ""): True for s in setters},
        "prompt": PROMPT,
        "hook_names": hook_names,
        "converted": converted,
        "versions": versions(),
    })


def is_weight_key(key):
    return not (key.endswith(".mask") or key.endswith("IGNORE"))


def golden_options(model_id):
    """Logits + weights with one processing switch off at a time.

    To keep the fixtures small, a weight that is bit-identical to the default processed model's
    is not stored again: it is listed in `same_as_processed` and lives in
    processed.safetensors under `state_dict.{key}`."""
    base = {k: v for k, v in load_tl(model_id, "processed").state_dict().items() if is_weight_key(k)}
    t, meta = {}, {}
    for switch in OPTION_SWITCHES:
        model = load_tl(model_id, "processed", **{switch: False})
        tokens = model.to_tokens(PROMPT)
        name = f"{switch}_off"
        t[f"{name}.logits"] = model(tokens)
        sd = {k: v for k, v in model.state_dict().items() if is_weight_key(k)}
        same = [k for k, v in sd.items() if k in base and base[k].shape == v.shape and torch.equal(base[k], v)]
        for k, v in sd.items():
            if k not in same:
                t[f"{name}.state_dict.{k}"] = v
        meta[name] = {
            "kwargs": {switch: False},
            "state_dict_keys": list(sd),
            "stored": [k for k in sd if k not in same],
            "same_as_processed": same,
        }
    t["tokens"] = tokens
    out_dir = GOLDEN / slug(model_id)
    converted = save_tensors(out_dir / "processed_options.safetensors", t)
    write_json(out_dir / "processed_options.json", {
        "model_id": model_id,
        "loader": "from_pretrained",
        "prompt": PROMPT,
        "note": "keys in same_as_processed are bit-identical to processed.safetensors state_dict.{key}",
        "variants": meta,
        "converted": converted,
        "versions": versions(),
    })


# ----------------------------------------------------------------------------- main
def tree_size(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clean_model_dirs(model_ids):
    """Remove only these models' hub repos and golden/{slug}/ folders (other scripts' outputs,
    e.g. make_family_fixtures.py's checkpoints, survive a re-run)."""
    for model_id in model_ids:
        for d in (hub_repo_dir(model_id), GOLDEN / slug(model_id)):
            if d.exists():
                shutil.rmtree(d)
    HUB.mkdir(parents=True, exist_ok=True)


def main():
    clean_model_dirs([model_id for model_id, *_ in MODELS])
    tok = build_tokenizer()
    for model_id, n_layer, extra, seed in MODELS:
        write_checkpoint(model_id, n_layer, extra, seed, tok)
    hf_models = {}
    for model_id, *_ in MODELS:
        hf_models[model_id], ids = check_hf_loading(model_id)
        print(f"[tokenizer] {model_id}: prompt -> {len(ids)} tokens")

    for model_id, *_ in MODELS:
        for mode in MODES:
            golden_mode(model_id, mode, hf_models[model_id])
    golden_flags("gpt2", "flags", ["set_use_attn_result", "set_use_split_qkv_input", "set_use_hook_mlp_in"])
    golden_flags("gpt2", "attn_in", ["set_use_attn_in"])
    golden_options("gpt2")

    # Loading must not have left anything behind in the fabricated cache (.locks, .no_exist, ...).
    for stray in [p for p in HUB.rglob("*") if p.name in (".locks", ".no_exist")]:
        shutil.rmtree(stray, ignore_errors=True)
    shutil.rmtree(os.environ["HF_HOME"], ignore_errors=True)

    for f in sorted(FIXTURES.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size:>9}  {f.relative_to(FIXTURES)}")
    print(f"TOTAL fixtures size: {tree_size(FIXTURES)} bytes ({tree_size(FIXTURES) / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
