#!/usr/bin/env python
"""TransformerLens goldens for the analysis API: ActivationCache methods, weight properties, utils.

Usage (from anywhere, after make_fixtures.py has written the tiny checkpoints):
    python scripts/reference/make_analysis_fixtures.py

Loads the fabricated `gpt2` checkpoint from __test__/fixtures/hub with TL (offline), and writes
    __test__/fixtures/golden/analysis/{cache,weights,utils}.{json,safetensors}
Existing fixtures are read, never rewritten. (make_fixtures.py's main() clears golden/, this folder
included: run this script again after it.)

Each JSON holds a list of cases that the TS tests replay. Arguments are written the way the TS
API takes them, with TL's snake_case option names (which the TS API accepts too):
  * a Slice given as a tuple in Python is a JSON list ([1, 5], [0, null, 2]);
  * a Slice given as a list of indices in Python is {"indices": [...]};
  * a tensor argument is {"tensor": "<key in the .safetensors>"}.
Outputs are stored under the case's name (float32; int64 for tokens; bool as float32 0/1), and
returned labels in the case's "labels".
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Importing make_fixtures sets HF_HUB_CACHE / HF_HUB_OFFLINE to the fixture hub before
# transformers is imported, and gives us its writers. Its main() (which rewrites the hub) is
# never called here.
from make_fixtures import (  # noqa: E402
    GOLDEN,
    PROMPT,
    PROMPT2,
    TRAIN_TEXT,
    load_tl,
    save_tensors,
    versions,
    write_json,
)

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformer_lens import utils  # noqa: E402
from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS  # noqa: E402

MODEL = "gpt2"
OUT = GOLDEN / "analysis"
SLICE_KEYS = ("pos_slice", "batch_slice", "neuron_slice")


# ----------------------------------------------------------------------------- argument codec
def to_py(value):
    """A JSON-encoded argument (TS conventions) -> the Python value TL is called with."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict) and "indices" in value:
        return list(value["indices"])
    return value


def py_kwargs(kwargs, tensors):
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, dict) and "tensor" in v:
            out[k] = tensors[v["tensor"]]
        elif k in SLICE_KEYS:
            out[k] = to_py(v)
        else:
            out[k] = v
    return out


class Recorder:
    def __init__(self):
        self.tensors = {}
        self.cases = []

    def add(self, name, out, meta):
        assert name not in self.tensors, name
        if isinstance(out, tuple):
            out, labels = out
            meta = {**meta, "labels": [str(x) for x in labels]}
        assert isinstance(out, torch.Tensor), (name, type(out))
        self.tensors[name] = out
        self.cases.append({"name": name, **meta, "shape": list(out.shape)})

    def write(self, stem, extra):
        converted = save_tensors(OUT / f"{stem}.safetensors", self.tensors)
        write_json(OUT / f"{stem}.json", {
            "model_id": MODEL,
            **extra,
            "cases": self.cases,
            "converted": converted,
            "versions": versions(),
        })


# ----------------------------------------------------------------------------- cache
# (method, cache, kwargs). Caches: "single" = run_with_cache(to_tokens(PROMPT)), "batch" =
# run_with_cache(to_tokens([PROMPT, PROMPT2])), "nobatch" = "single" with remove_batch_dim=True.
# Every call gets a fresh cache, so methods that add keys (head results) do not leak.
CACHE_CASES = [
    ("accumulated_resid", "single", {"return_labels": True}),
    ("accumulated_resid", "single", {"layer": 1, "incl_mid": True, "return_labels": True}),
    ("accumulated_resid", "single", {"layer": 2, "mlp_input": True, "return_labels": True}),
    ("accumulated_resid", "single", {"layer": 0, "return_labels": True}),
    ("accumulated_resid", "single", {"layer": 3, "incl_mid": True, "return_labels": True}),
    ("accumulated_resid", "single", {"apply_ln": True}),
    ("accumulated_resid", "single", {"layer": 1, "mlp_input": True, "apply_ln": True, "pos_slice": -1}),
    ("accumulated_resid", "single", {"pos_slice": [1, 5]}),
    ("accumulated_resid", "single", {"pos_slice": [0, None, 3], "apply_ln": True}),
    ("accumulated_resid", "single", {"pos_slice": {"indices": [0, 2, 3]}, "apply_ln": True, "incl_mid": True}),
    ("accumulated_resid", "batch", {"apply_ln": True, "pos_slice": -1, "return_labels": True}),
    ("accumulated_resid", "nobatch", {"apply_ln": True, "incl_mid": True}),
    ("decompose_resid", "single", {"return_labels": True}),
    ("decompose_resid", "single", {"mode": "attn", "return_labels": True}),
    ("decompose_resid", "single", {"mode": "mlp", "return_labels": True}),
    ("decompose_resid", "single", {"layer": 1, "mlp_input": True, "return_labels": True}),
    ("decompose_resid", "single", {"layer": 0, "return_labels": True}),
    ("decompose_resid", "single", {"apply_ln": True, "pos_slice": -1}),
    ("decompose_resid", "single", {"layer": 2, "mlp_input": True, "apply_ln": True, "incl_embeds": False, "return_labels": True}),
    ("decompose_resid", "batch", {"apply_ln": True, "pos_slice": [-3, None], "return_labels": True}),
    ("decompose_resid", "nobatch", {"apply_ln": True, "mode": "attn"}),
    ("stack_head_results", "single", {"return_labels": True}),
    ("stack_head_results", "single", {"layer": 2, "incl_remainder": True, "pos_slice": [None, 6], "return_labels": True}),
    ("stack_head_results", "single", {"layer": 2, "pos_slice": -1, "apply_ln": True}),
    ("stack_head_results", "single", {"layer": 0, "return_labels": True}),
    ("stack_head_results", "single", {"layer": 0, "incl_remainder": True, "return_labels": True}),
    ("stack_head_results", "batch", {"pos_slice": {"indices": [1, 4]}, "incl_remainder": True, "apply_ln": True, "return_labels": True}),
    ("stack_head_results", "nobatch", {"layer": 1, "pos_slice": -2}),
    ("stack_activation", "single", {"activation_name": "pattern"}),
    ("stack_activation", "single", {"activation_name": "resid_post", "layer": 2}),
    ("stack_activation", "single", {"activation_name": "scale", "sublayer_type": "ln2"}),
    ("stack_activation", "batch", {"activation_name": "z", "layer": 1}),
    ("get_neuron_results", "single", {"layer": 0, "pos_slice": -1}),
    ("get_neuron_results", "single", {"layer": 1, "pos_slice": [2, 4], "neuron_slice": [0, 10]}),
    ("get_neuron_results", "single", {"layer": 2, "pos_slice": -1, "neuron_slice": {"indices": [3, 7, 100]}}),
    ("get_neuron_results", "single", {"layer": 1, "pos_slice": [2, 4], "neuron_slice": 5}),
    ("get_neuron_results", "batch", {"layer": 2, "pos_slice": 3, "neuron_slice": [0, 128, 16]}),
    ("stack_neuron_results", "single", {"layer": 1, "pos_slice": -1, "return_labels": True}),
    ("stack_neuron_results", "single", {"layer": 3, "pos_slice": -1, "neuron_slice": [0, 8], "incl_remainder": True, "apply_ln": True, "return_labels": True}),
    ("stack_neuron_results", "single", {"layer": 0, "pos_slice": -1, "return_labels": True}),
    ("stack_neuron_results", "single", {"layer": 0, "pos_slice": -1, "incl_remainder": True, "return_labels": True}),
    ("stack_neuron_results", "batch", {"layer": 2, "pos_slice": [0, 2], "neuron_slice": {"indices": [1, 5, 127]}, "return_labels": True}),
    ("get_full_resid_decomposition", "single", {"pos_slice": -1, "return_labels": True}),
    ("get_full_resid_decomposition", "single", {"pos_slice": -1, "expand_neurons": False, "return_labels": True}),
    ("get_full_resid_decomposition", "single", {"layer": 1, "mlp_input": True, "pos_slice": -1, "apply_ln": True, "return_labels": True}),
    ("get_full_resid_decomposition", "single", {"layer": 0, "return_labels": True}),
    ("get_full_resid_decomposition", "single", {"layer": 2, "expand_neurons": False, "apply_ln": True, "pos_slice": [0, 5]}),
    ("get_full_resid_decomposition", "batch", {"pos_slice": [-2, None], "expand_neurons": False, "apply_ln": True, "return_labels": True}),
    ("get_full_resid_decomposition", "nobatch", {"layer": 1, "pos_slice": -1, "apply_ln": True}),
]

UNPROCESSED_CASES = [
    ("accumulated_resid", "single", {"layer": 1, "mlp_input": True, "apply_ln": True, "pos_slice": -1}),
    ("decompose_resid", "batch", {"apply_ln": True, "pos_slice": [-3, None], "return_labels": True}),
    ("get_neuron_results", "single", {"layer": 2, "pos_slice": -1, "neuron_slice": {"indices": [3, 7, 100]}}),
    ("get_full_resid_decomposition", "single", {"layer": 1, "mlp_input": True, "pos_slice": -1, "apply_ln": True, "return_labels": True}),
    ("get_full_resid_decomposition", "batch", {"pos_slice": [-2, None], "expand_neurons": False, "apply_ln": True, "return_labels": True}),
]


def cache_cases(models, rec, meta):
    tok_single = models["processed"].to_tokens(PROMPT2)
    tok_batch = models["processed"].to_tokens([PROMPT, PROMPT2])
    inputs = {"single": tok_single, "batch": tok_batch}

    def fresh(model_key, which):
        model = models[model_key]
        if which == "nobatch":
            return model.run_with_cache(tok_single, remove_batch_dim=True)[1]
        return model.run_with_cache(inputs[which])[1]

    def run(model_key, method, which, kwargs, tensors=None):
        cache = fresh(model_key, which)
        kw = py_kwargs(kwargs, tensors or {})
        if method == "stack_activation":
            kw = dict(kw)
            name = kw.pop("activation_name")
            out = cache.stack_activation(name, **kw)
        elif method in ("get_neuron_results", "stack_neuron_results"):
            kw = dict(kw)
            layer = kw.pop("layer")
            out = getattr(cache, method)(layer, **kw)
        else:
            out = getattr(cache, method)(**kw)
        return out

    counts = {}
    for model_key in ("processed", "unprocessed"):
        for method, which, kwargs in CACHE_CASES:
            if model_key == "unprocessed" and (method, which, kwargs) not in UNPROCESSED_CASES:
                continue  # without processing, only LN- and weight-dependent results differ
            n = counts.get((model_key, method), 0)
            counts[(model_key, method)] = n + 1
            name = f"{model_key}.{method}.{n}"
            rec.add(name, run(model_key, method, which, kwargs), {"model": model_key, "method": method, "cache": which, "kwargs": kwargs})

    # apply_ln_to_stack called directly, incl. batch_slice and has_batch_dim.
    for model_key in ("processed", "unprocessed"):
        model = models[model_key]
        cache = fresh(model_key, "batch")
        stack_full = cache.decompose_resid(pos_slice=(0, 4))
        stack_last = cache.decompose_resid(pos_slice=-1)
        rec.tensors[f"{model_key}.input.decompose_full"] = stack_full
        rec.tensors[f"{model_key}.input.decompose_last"] = stack_last
        ln_cases = [
            ("decompose_full", {"pos_slice": [0, 4]}),
            ("decompose_full", {"layer": 1, "pos_slice": [0, 4]}),
            ("decompose_full", {"layer": 2, "mlp_input": True, "pos_slice": [0, 4]}),
            ("decompose_last", {"pos_slice": -1, "batch_slice": 1}),
            ("decompose_last", {"layer": 0, "pos_slice": -1, "batch_slice": [0, 1]}),
            ("decompose_full", {"layer": -1, "pos_slice": [0, 4], "batch_slice": {"indices": [1]}}),
        ]
        if model_key == "unprocessed":
            ln_cases = ln_cases[2:4]
        for i, (inp, kwargs) in enumerate(ln_cases):
            out = cache.apply_ln_to_stack(stack_full if inp == "decompose_full" else stack_last, **py_kwargs(kwargs, {}))
            rec.add(f"{model_key}.apply_ln_to_stack.{i}", out, {
                "model": model_key, "method": "apply_ln_to_stack", "cache": "batch",
                "input": f"{model_key}.input.decompose_full" if inp == "decompose_full" else f"{model_key}.input.decompose_last",
                "kwargs": kwargs,
            })
        del model

    # logit_attrs: int, single-token string, token tensors, incorrect tokens, slices.
    model = models["processed"]
    str_token = model.to_str_tokens(PROMPT)[4]  # " fox": one token in the fixture vocabulary
    assert model.to_tokens(str_token, prepend_bos=False).numel() == 1
    answer_b = tok_batch[:, 5].clone()
    wrong_b = tok_batch[:, 6].clone()
    next_tokens = tok_batch[:, 1:6].clone()
    tensors = {"logit.answer_b": answer_b, "logit.wrong_b": wrong_b, "logit.next_tokens": next_tokens,
               "logit.one_token": torch.tensor([42]), "logit.one_wrong": torch.tensor([3]),
               "logit.scalar_token": torch.tensor(7)}
    rec.tensors.update(tensors)
    single = fresh("processed", "single")
    batch = fresh("processed", "batch")
    stacks = {
        "single.decompose_last": single.decompose_resid(pos_slice=-1),
        "batch.decompose_last": batch.decompose_resid(pos_slice=-1),
        "batch.accumulated_full": batch.accumulated_resid()[:, :, :5],
        "batch.decompose_full": batch.decompose_resid(pos_slice=(2, 4)),
    }
    for k, v in stacks.items():
        rec.tensors[f"input.{k}"] = v
    la_cases = [
        ("single", "single.decompose_last", {"tokens": 42, "pos_slice": -1}),
        ("single", "single.decompose_last", {"tokens": str_token, "incorrect_tokens": 3, "pos_slice": -1}),
        ("single", "single.decompose_last", {"tokens": {"tensor": "logit.one_token"}, "incorrect_tokens": {"tensor": "logit.one_wrong"}, "pos_slice": -1}),
        ("single", "single.decompose_last", {"tokens": {"tensor": "logit.scalar_token"}, "incorrect_tokens": 11, "pos_slice": -1}),
        ("batch", "batch.decompose_last", {"tokens": {"tensor": "logit.answer_b"}, "incorrect_tokens": {"tensor": "logit.wrong_b"}, "pos_slice": -1}),
        ("batch", "batch.accumulated_full", {"tokens": {"tensor": "logit.next_tokens"}, "pos_slice": [None, 5]}),
        ("batch", "batch.decompose_full", {"tokens": 9, "pos_slice": [2, 4], "batch_slice": 0}),
    ]
    for i, (which, inp, kwargs) in enumerate(la_cases):
        cache = single if which == "single" else batch
        kw = py_kwargs(kwargs, rec.tensors)
        out = cache.logit_attrs(stacks[inp], **kw)
        rec.add(f"processed.logit_attrs.{i}", out, {"model": "processed", "method": "logit_attrs", "cache": which, "input": f"input.{inp}", "kwargs": kwargs})

    # Access: shorthand keys (incl. negative layers) -> the full name TL resolves them to.
    cache = fresh("processed", "single")
    lookups = [["pattern", 0], ["resid_post", -1], ["resid_pre", -3], ["k", 1, "a"], ["scale", 2, "ln1"],
               ["normalized", -1, "ln2"], ["embed"], ["pos_embed"], ["scale"], ["k2"], ["pre1"], ["scale0ln2"],
               ["mlp_post", 1], ["attn", -2], ["q", 0, "attn"], ["blocks.1.attn.hook_z"], ["hook_embed"], ["normalized"]]
    resolved = []
    for args in lookups:
        key = args[0] if len(args) == 1 else tuple(args)
        hit = cache[key]
        resolved.append({"args": args, "name": next(k for k, v in cache.items() if v is hit)})
    act_names = [["k", 6, "a"], ["pre", 2], ["embed"], ["normalized", 27, "ln2"], ["k6"], ["scale4ln1"], ["pre5"],
                 ["attn_logits", 3], ["mlp_mid", 0], ["value", 1], ["resid_pre", 4, "b"], ["hook_embed"],
                 ["blocks.0.attn.hook_q"], ["blocks.0.attn.hook_q", 1], ["rot_k", 2, "block"], ["scale"], ["attn_out", 5, "blocks"],
                 ["pre_linear", 1], ["result", 0, "attention"], ["q12m"]]
    act_name_results = [{"args": a, "name": utils.get_act_name(*a)} for a in act_names]

    # remove_batch_dim / apply_slice_to_batch_dim.
    batch = fresh("processed", "batch")
    key = "blocks.1.hook_resid_post"
    sliced = batch.apply_slice_to_batch_dim(1)
    rec.tensors["slice_batch.int.resid_post_1"] = sliced[key]
    sliced2 = batch.apply_slice_to_batch_dim((1, 2))
    rec.tensors["slice_batch.tuple.resid_post_1"] = sliced2[key]
    sliced3 = batch.apply_slice_to_batch_dim([1, 0])
    rec.tensors["slice_batch.array.resid_post_1"] = sliced3[key]
    nob = fresh("processed", "nobatch")
    rec.tensors["nobatch.resid_post_1"] = nob[key]
    after_compute = fresh("processed", "single")
    after_compute.compute_head_results()
    for l in range(3):
        rec.tensors[f"compute_head_results.{l}"] = after_compute[f"blocks.{l}.attn.hook_result"]

    meta.update({
        "prompts": {"single": PROMPT2, "batch": [PROMPT, PROMPT2]},
        "str_token": str_token,
        "lookups": resolved,
        "act_names": act_name_results,
        "batch_slice": {
            "key": key,
            "int": {"has_batch_dim": sliced.has_batch_dim, "keys": list(sliced.keys())},
            "tuple": {"has_batch_dim": sliced2.has_batch_dim},
            "array": {"has_batch_dim": sliced3.has_batch_dim},
        },
        "nobatch_has_batch_dim": nob.has_batch_dim,
        "keys_after_compute_head_results": list(after_compute.keys()),
        "len_single": len(fresh("processed", "single")),
    })


# ----------------------------------------------------------------------------- weights
WEIGHT_PROPS = ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_out", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U"]
# Not stored again (size): these TL properties are bit-identical to state-dict entries that
# make_fixtures.py already wrote to golden/gpt2/processed.safetensors as "state_dict.{key}".
SAME_AS_STATE_DICT = {"W_U": ["unembed.W_U"], "W_E": ["embed.W_E"], "W_pos": ["pos_embed.W_pos"],
                      "W_E_pos": ["embed.W_E", "pos_embed.W_pos"]}


def weight_cases(models, rec, meta):
    for model_key, model in models.items():
        props = WEIGHT_PROPS if model_key == "processed" else ["b_Q", "b_O", "b_in", "b_out", "b_U"]
        for p in props:
            rec.add(f"{model_key}.{p}", getattr(model, p), {"model": model_key, "property": p})
        assert model.W_gate is None
        if model_key == "processed":
            sd = model.state_dict()
            for prop, keys in SAME_AS_STATE_DICT.items():
                assert torch.equal(getattr(model, prop), torch.cat([sd[k] for k in keys], dim=0)), prop
        for layer, mlp_input, incl in [(0, False, True), (0, True, True), (2, False, True), (2, True, False), (3, False, True), (3, False, False), (1, True, True)]:
            out = model.accumulated_bias(layer, mlp_input=mlp_input, include_mlp_biases=incl)
            rec.add(f"{model_key}.accumulated_bias.{layer}.{int(mlp_input)}.{int(incl)}", out, {
                "model": model_key, "method": "accumulated_bias", "layer": layer,
                "kwargs": {"mlp_input": mlp_input, "include_mlp_biases": incl}})
    model = models["processed"]
    str_token = model.to_str_tokens(PROMPT)[2]
    tok_batch = model.to_tokens([PROMPT, PROMPT2])
    inputs = {"trd.tokens_2d": tok_batch[:, :5].clone(), "trd.tokens_1d": tok_batch[0, 3:9].clone(),
              "trd.tokens_one": torch.tensor([17]), "trd.tokens_0d": torch.tensor(99)}
    rec.tensors.update(inputs)
    for i, arg in enumerate([5, str_token, {"tensor": "trd.tokens_2d"}, {"tensor": "trd.tokens_1d"},
                             {"tensor": "trd.tokens_one"}, {"tensor": "trd.tokens_0d"}]):
        tokens = inputs[arg["tensor"]] if isinstance(arg, dict) else arg
        rec.add(f"processed.tokens_to_residual_directions.{i}", model.tokens_to_residual_directions(tokens), {
            "model": "processed", "method": "tokens_to_residual_directions", "tokens": arg})
    meta.update({"all_head_labels": model.all_head_labels(), "W_gate": None, "d_vocab": model.cfg.d_vocab,
                 "same_as_state_dict": {"file": "golden/gpt2/processed.safetensors", "prefix": "state_dict.",
                                        "properties": SAME_AS_STATE_DICT}})


# ----------------------------------------------------------------------------- utils
def tokenize_inputs():
    lines = [ln.strip() for ln in TRAIN_TEXT.splitlines() if ln.strip()]
    return {
        "many": lines,  # > 10 rows: datasets shards the map over num_proc=10 processes
        "few": lines[:3],
        "short": ["Hello world"],
        "unicode": ["Snow ❄ and sun ☀️ — héllo 🦊 fox", "The quick brown fox.", "über naïve café"],
    }


TOKENIZE_CASES = [
    ("many", {"max_length": 16}),
    ("many", {"max_length": 12, "add_bos_token": False}),
    ("few", {"max_length": 9}),
    ("few", {"max_length": 9, "num_proc": 1}),
    ("short", {"max_length": 8}),
    ("unicode", {"max_length": 6, "num_proc": 1}),
]


def utils_cases(models, rec, meta):
    model = models["processed"]
    gen = torch.Generator().manual_seed(4242)
    logits = torch.randn(2, 6, 20, generator=gen) * 2
    tokens = torch.randint(0, 20, (2, 6), generator=gen)
    tokens[0, 3] = logits[0, 2].argmax()  # some correct predictions for accuracy
    tokens[1, 1] = logits[1, 0].argmax()
    tokens[1, 5] = logits[1, 4].argmax()
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    rec.tensors.update({"lm.logits": logits, "lm.tokens": tokens, "lm.mask": mask})
    rec.add("lm_cross_entropy_loss.mean", utils.lm_cross_entropy_loss(logits, tokens), {"fn": "lm_cross_entropy_loss", "kwargs": {}})
    rec.add("lm_cross_entropy_loss.per_token", utils.lm_cross_entropy_loss(logits, tokens, per_token=True), {"fn": "lm_cross_entropy_loss", "kwargs": {"per_token": True}})
    rec.add("lm_cross_entropy_loss.mask", utils.lm_cross_entropy_loss(logits, tokens, attention_mask=mask), {"fn": "lm_cross_entropy_loss", "kwargs": {"attention_mask": {"tensor": "lm.mask"}}})
    rec.add("lm_cross_entropy_loss.mask_per_token", utils.lm_cross_entropy_loss(logits, tokens, attention_mask=mask, per_token=True), {"fn": "lm_cross_entropy_loss", "kwargs": {"attention_mask": {"tensor": "lm.mask"}, "per_token": True}})
    rec.add("lm_accuracy.mean", utils.lm_accuracy(logits, tokens), {"fn": "lm_accuracy", "kwargs": {}})
    rec.add("lm_accuracy.per_token", utils.lm_accuracy(logits, tokens, per_token=True), {"fn": "lm_accuracy", "kwargs": {"per_token": True}})

    # The model's own logits and loss agree with lm_cross_entropy_loss.
    tok_batch = model.to_tokens([PROMPT, PROMPT2])
    m_logits = model(tok_batch)
    rec.tensors["lm.model_tokens"] = tok_batch
    rec.add("lm_cross_entropy_loss.model", utils.lm_cross_entropy_loss(m_logits, tok_batch), {"fn": "lm_cross_entropy_loss", "kwargs": {}, "logits": "model"})
    rec.add("lm_accuracy.model_per_token", utils.lm_accuracy(m_logits, tok_batch, per_token=True), {"fn": "lm_accuracy", "kwargs": {"per_token": True}, "logits": "model"})

    x = torch.linspace(-6, 6, 121).reshape(11, 11)
    y = torch.randn(3, 5, 16, generator=gen) * 3
    rec.tensors.update({"act.x": x, "act.y": y})
    for name, fn in SUPPORTED_ACTIVATIONS.items():
        rec.add(f"act.{name}.x", fn(x), {"fn": "activation", "act_fn": name, "input": "act.x"})
        rec.add(f"act.{name}.y", fn(y), {"fn": "activation", "act_fn": name, "input": "act.y"})

    corner_in = torch.arange(5 * 6 * 7, dtype=torch.float32).reshape(5, 6, 7)
    rec.tensors["corner.input"] = corner_in
    rec.add("get_corner.3", utils.get_corner(corner_in), {"fn": "get_corner", "kwargs": {}})
    rec.add("get_corner.2", utils.get_corner(corner_in, 2), {"fn": "get_corner", "n": 2})
    rec.add("get_corner.8", utils.get_corner(corner_in, 8), {"fn": "get_corner", "n": 8})
    rbd = {"rbd.one": torch.arange(12.0).reshape(1, 3, 4), "rbd.two": torch.arange(12.0).reshape(2, 3, 2)}
    rec.tensors.update(rbd)
    for k, v in rbd.items():
        rec.add(f"remove_batch_dim.{k}", utils.remove_batch_dim(v), {"fn": "remove_batch_dim", "input": k})

    # Slice: indices() and apply() on an arange tensor.
    arange = torch.arange(4 * 10, dtype=torch.float32).reshape(4, 10)
    rec.tensors["slice.input"] = arange
    slice_cases = [3, -1, [2, 7], [None, 5], [1, None, 3], [-4, None], [None, None, 2], {"indices": [0, 9, 3]},
                   {"indices": [-1, 2]}, None, [8, 2], [None, -2, 4], [None, None, -3], [7, 2, -2]]
    slices = []
    for i, s in enumerate(slice_cases):
        sl = utils.Slice(to_py(s))
        entry = {"input": s, "mode": sl.mode, "indices_10": [int(v) for v in sl.indices(10)]}
        if sl.mode == "int":
            entry["indices_none"] = [int(v) for v in sl.indices()]
        if sl.mode == "slice" and (sl.slice.step or 1) < 0:
            slices.append(entry)  # torch cannot apply a negative step; numpy's indices() can
            continue
        for dim in (-1, 1) if i % 2 else (-1,):
            rec.add(f"slice.{i}.dim{dim}", sl.apply(arange, dim=dim), {"fn": "Slice.apply", "slice": s, "dim": dim})
        if sl.mode != "array" and (sl.mode != "int" or abs(sl.slice) < 4):
            rec.add(f"slice.{i}.dim0", sl.apply(arange), {"fn": "Slice.apply", "slice": s, "dim": 0})
        slices.append(entry)
    unwrapped = utils.Slice.unwrap(2)
    meta["slices"] = slices
    meta["slice_unwrap_int"] = {"mode": unwrapped.mode, "indices_10": [int(v) for v in unwrapped.indices(10)]}

    # tokenize_and_concatenate over an in-memory dataset with the model's tokenizer.
    texts = tokenize_inputs()
    tok_cases = []
    for i, (which, kwargs) in enumerate(TOKENIZE_CASES):
        ds = Dataset.from_dict({"text": texts[which]})
        out = utils.tokenize_and_concatenate(ds, model.tokenizer, **kwargs)
        rows = [list(r) for r in out.with_format(None)["tokens"]]
        toks = torch.tensor(rows, dtype=torch.int64) if rows else torch.zeros(0, kwargs["max_length"], dtype=torch.int64)
        rec.add(f"tokenize_and_concatenate.{i}", toks, {"fn": "tokenize_and_concatenate", "texts": which, "kwargs": kwargs})
        tok_cases.append(i)
    meta["tokenize_texts"] = texts
    meta["tokenizer"] = {"pad_token_id": model.tokenizer.pad_token_id, "eos_token_id": model.tokenizer.eos_token_id,
                         "bos_token_id": model.tokenizer.bos_token_id, "len": len(model.tokenizer)}


# ----------------------------------------------------------------------------- main
def main():
    torch.manual_seed(0)
    models = {"processed": load_tl(MODEL, "processed"), "unprocessed": load_tl(MODEL, "unprocessed")}
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, fn in [("cache", cache_cases), ("weights", weight_cases), ("utils", utils_cases)]:
        rec, meta = Recorder(), {}
        fn(models, rec, meta)
        rec.write(stem, meta)
    total = 0
    for f in sorted(OUT.iterdir()):
        total += f.stat().st_size
        print(f"{f.stat().st_size:>9}  {f.relative_to(GOLDEN)}")
    print(f"TOTAL analysis fixtures: {total} bytes ({total / 2**10:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
