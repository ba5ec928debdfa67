#!/usr/bin/env python
"""TransformerLens goldens for the rest of the model surface: weight processing on a loaded
model, the parts of forward TL exposes, and the HookedRootModule / HookPoint methods.

Usage:  python scripts/reference/make_surface_fixtures.py   (after make_fixtures.py and
        make_family_fixtures.py: it only reads the checkpoints under __test__/fixtures/hub)

Writes __test__/fixtures/golden/surface/:
  {slug}_processing.*  for gpt2 and 01-ai/Yi-6B (RMSNorm, grouped-query attention, gated MLP):
      cases.base   the from_pretrained_no_processing state dict (weights; buffers left out)
      cases.{case} logits on PROMPT and the state-dict weights after: each processing step alone (TL's
                   from_pretrained with that switch only), process_weights_ with several switch
                   sets, refactor_factored_attn_matrices (from_pretrained and the method), and
                   load_and_process_state_dict of the unprocessed state dict;
      cases.sd.*   TL's methods called on the unprocessed state dict (fold_layer_norm with its
                   switches, center_writing_weights, ...): the returned dict, in its key order;
      errors       what TL raises where it raises (KeyError / AssertionError and the message).
      Each case maps its keys to tensors stored once by content (`blob.{i}` in the safetensors).
  {slug}_forward.*     input_to_embed (right/left padding, a given mask, a KV cache),
                       get_residual (offsets, masks, a hook on hook_pos_embed), loss_fn,
                       get_pos_offset.
  hooks.*              gpt2: hook_points names, cache_all / cache_some / add_caching_hooks /
                       get_caching_hooks (names filters, pos_slice, incl_bwd), add_perma_hook
                       and reset_hooks / remove_all_hook_fns, hook contexts, hooks() levels,
                       run_with_hooks, HookPoint add_hook / remove_hooks: observations in the
                       JSON (`steps`), cached values in the safetensors.
"""
import copy
import hashlib
import sys

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import torch

from transformer_lens.past_key_value_caching import HookedTransformerKeyValueCache

OUT = mf.GOLDEN / "surface"
MODELS = ["gpt2", "01-ai/Yi-6B"]
PROMPTS = [mf.PROMPT, mf.PROMPT2]


def weights(sd):
    return {k: v for k, v in sd.items() if not k.endswith((".mask", "IGNORE", "rotary_sin", "rotary_cos"))}


def error_of(fn):
    try:
        fn()
    except (KeyError, AssertionError) as e:
        return {"type": type(e).__name__, "message": str(e).strip("'")}
    raise RuntimeError("expected TL to raise")


class Recorder:
    """Tensors stored once by content (`blob.{i}`): many processing results are bit-identical to
    the unprocessed weights or to another case's; each case maps its keys to blob names."""

    def __init__(self, base):
        self.base = base
        self.t = {}
        self.meta = {}
        self.blobs = {}

    def blob(self, v):
        v = v.detach().cpu().contiguous()
        key = (str(v.dtype), tuple(v.shape), hashlib.sha1(v.numpy().tobytes()).hexdigest())
        if key not in self.blobs:
            self.blobs[key] = f"blob.{len(self.blobs)}"
            self.t[self.blobs[key]] = v
        return self.blobs[key]

    def state(self, name, sd, logits=None, extra=None):
        sd = dict(sd)
        w = weights(sd)
        entry = {"keys": list(sd), "weights": {k: self.blob(v) for k, v in w.items()}}
        if logits is not None:
            entry["logits"] = self.blob(logits)
        self.meta[name] = {**entry, **(extra or {})}


# ----------------------------------------------------------------------------- processing
STEP_SWITCHES = {"fold_ln": "fold_layer_norm", "center_writing_weights": "center_writing_weights",
                 "center_unembed": "center_unembed", "fold_value_biases": "fold_value_biases"}
OFF = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False, "fold_value_biases": False}
PROCESS_VARIANTS = {
    "default": {},
    "no_fold_ln": {"fold_ln": False},
    "no_center_writing_weights": {"center_writing_weights": False},
    "no_center_unembed": {"center_unembed": False},
    "refactor": {"refactor_factored_attn_matrices": True},
}
LOAD_VARIANTS = {
    "default": {},
    "partial": {"fold_ln": False, "center_writing_weights": True, "center_unembed": False, "fold_value_biases": True},
}


def golden_processing(model_id):
    rotary = model_id != "gpt2"
    unproc = mf.load_tl(model_id, "unprocessed")
    tokens = unproc.to_tokens(mf.PROMPT)
    base_sd = unproc.state_dict()
    rec = Recorder({k: v.clone() for k, v in weights(base_sd).items()})
    rec.t["tokens"] = tokens
    rec.state("base", base_sd, unproc(tokens), {"cfg": mf.cfg_json(unproc)})
    errors = {}

    def model_case(name, model, replay):
        rec.state(name, model.state_dict(), model(tokens), {
            "replay": replay, "normalization_type": model.cfg.normalization_type, "cfg": mf.cfg_json(model)})

    # Each step alone, on the model (TL processes a loaded model through from_pretrained's switches).
    for switch, method in STEP_SWITCHES.items():
        model = mf.load_tl(model_id, "processed", **{**OFF, switch: True})
        model_case(f"step.{method}", model, {"method": method})
    # process_weights_ on the unprocessed model.
    for variant, kwargs in PROCESS_VARIANTS.items():
        if rotary and kwargs.get("refactor_factored_attn_matrices"):
            m = mf.load_tl(model_id, "unprocessed")
            errors[f"process_weights.{variant}"] = {**error_of(lambda: m.process_weights_(**kwargs)), "kwargs": kwargs}
            continue
        model = mf.load_tl(model_id, "unprocessed")
        model.process_weights_(**kwargs)
        model_case(f"process_weights.{variant}", model, {"method": "process_weights", "kwargs": kwargs})
    processed = mf.load_tl(model_id, "processed")
    errors["process_weights.on_processed"] = error_of(lambda: processed.process_weights_())
    # refactor_factored_attn_matrices: at load and as a method on the model.
    if rotary:
        m = mf.load_tl(model_id, "unprocessed")
        errors["refactor"] = error_of(lambda: m.refactor_factored_attn_matrices(m.state_dict()))
    else:
        model = mf.load_tl(model_id, "processed", refactor_factored_attn_matrices=True)
        model_case("from_pretrained.refactor", model, {"method": "from_pretrained", "kwargs": {"refactor_factored_attn_matrices": True}})
        model = mf.load_tl(model_id, "unprocessed")
        model.load_state_dict(model.refactor_factored_attn_matrices(model.state_dict()))
        model_case("step.refactor_factored_attn_matrices", model, {"method": "refactor_factored_attn_matrices"})
    # load_and_process_state_dict of the unprocessed state dict, into a model built with the
    # config those switches give (TL's from_pretrained path).
    for variant, kwargs in LOAD_VARIANTS.items():
        model = mf.load_tl(model_id, "processed", **kwargs)
        model.load_and_process_state_dict(copy.deepcopy(base_sd), **kwargs)
        model_case(f"load_and_process.{variant}", model, {"method": "load_and_process_state_dict", "kwargs": kwargs})

    # TL's methods on the unprocessed state dict.
    sd_cases = {
        "fold_layer_norm.default": ("fold_layer_norm", {}),
        "fold_layer_norm.no_biases": ("fold_layer_norm", {"fold_biases": False}),
        "fold_layer_norm.no_center": ("fold_layer_norm", {"center_weights": False}),
        "fold_layer_norm.rms": ("fold_layer_norm", {"fold_biases": False, "center_weights": False}),
        "center_writing_weights": ("center_writing_weights", {}),
        "center_unembed": ("center_unembed", {}),
        "fold_value_biases": ("fold_value_biases", {}),
        "refactor_factored_attn_matrices": ("refactor_factored_attn_matrices", {}),
    }
    for name, (method, kwargs) in sd_cases.items():
        fn = getattr(unproc, method)
        sd = copy.deepcopy(base_sd)
        try:
            out = fn(sd, **kwargs)
        except (KeyError, AssertionError):
            errors[f"sd.{name}"] = {**error_of(lambda: fn(copy.deepcopy(base_sd), **kwargs)), "method": method, "kwargs": kwargs}
            continue
        rec.state(f"sd.{name}", out, None, {"method": method, "kwargs": kwargs})

    slug = mf.slug(model_id)
    rec.meta["errors"] = errors
    converted = mf.save_tensors(OUT / f"{slug}_processing.safetensors", rec.t)
    mf.write_json(OUT / f"{slug}_processing.json", {
        "model_id": model_id, "prompt": mf.PROMPT, "cases": rec.meta, "converted": converted, "versions": mf.versions()})
    print(f"[{slug}_processing] {len(rec.t)} tensors, errors: {sorted(errors)}")


# ----------------------------------------------------------------------------- forward parts
NEXT_IDS = [[5, 6], [7, 8]]  # two new positions per row, no pad / bos id in either vocabulary


def golden_forward(model_id):
    from transformer_lens import utils

    model = mf.load_tl(model_id, "processed")
    left = mf.load_tl(model_id, "processed", default_padding_side="left")
    t, meta = {}, {}

    def ite(name, m, inp, **kw):
        residual, tokens, short, mask = m.input_to_embed(inp, **kw)
        t[f"{name}.residual"] = residual
        t[f"{name}.tokens"] = tokens
        if mask is not None:
            t[f"{name}.attention_mask"] = mask
        meta[name] = {"shortformer_pos_embed": None if short is None else "tensor", "attention_mask": mask is not None}

    ite("ite.single", model, mf.PROMPT)
    ite("ite.right", model, PROMPTS)
    ite("ite.padding_left_arg", model, PROMPTS, padding_side="left")
    ite("ite.tokenizer_left", left, PROMPTS)
    batch = model.to_tokens(PROMPTS)
    given = utils.get_attention_mask(model.tokenizer, batch, True)
    t["given.tokens"], t["given.mask"] = batch, given
    ite("ite.given_mask", model, batch, attention_mask=given)

    # A KV cache filled with a left-padded batch, then two new positions.
    cache = HookedTransformerKeyValueCache.init_cache(left.cfg, left.cfg.device, 2)
    first = left.to_tokens(PROMPTS)
    t["kv.first"] = first
    left(first, past_kv_cache=cache)
    meta["kv"] = {"pos_offset_none": left.get_pos_offset(None, 2), "pos_offset": left.get_pos_offset(cache, 2)}
    nxt = torch.tensor(NEXT_IDS)
    t["kv.next"] = nxt
    ite("ite.kv", left, nxt, past_kv_cache=cache)
    t["kv.previous_attention_mask"] = cache.previous_attention_mask
    meta["kv"]["pos_offset_after"] = left.get_pos_offset(cache, 2)

    # get_residual
    tokens = model.to_tokens(mf.PROMPT)
    embed = model.embed(tokens)
    t["res.tokens"], t["res.embed"] = tokens, embed
    residual, short = model.get_residual(embed, 0)
    t["res.plain"] = residual
    meta["res.plain"] = {"shortformer_pos_embed": None if short is None else "tensor"}
    t["res.offset3"] = model.get_residual(embed[:, :5], 3, tokens=tokens[:, :5], return_shortformer_pos_embed=False)
    lt = left.to_tokens(PROMPTS)
    lm = utils.get_attention_mask(left.tokenizer, lt, True)
    t["res.left.tokens"], t["res.left.mask"] = lt, lm
    t["res.left"] = left.get_residual(left.embed(lt), 0, attention_mask=lm)[0]
    if "hook_pos_embed" in model.hook_dict:
        with model.hooks(fwd_hooks=[("hook_pos_embed", lambda x, hook: x * 2)]):
            t["res.hooked"] = model.get_residual(embed, 0)[0]

    # loss_fn
    logits = model(batch)
    t["loss.logits"] = logits
    t["loss.mean"] = model.loss_fn(logits, batch)
    t["loss.per_token"] = model.loss_fn(logits, batch, per_token=True)
    t["loss.masked"] = model.loss_fn(logits, batch, attention_mask=given)
    t["loss.masked_per_token"] = model.loss_fn(logits, batch, attention_mask=given, per_token=True)

    slug = mf.slug(model_id)
    converted = mf.save_tensors(OUT / f"{slug}_forward.safetensors", t)
    mf.write_json(OUT / f"{slug}_forward.json", {
        "model_id": model_id, "prompts": PROMPTS, "next_ids": NEXT_IDS, "cases": meta,
        "converted": converted, "versions": mf.versions()})
    print(f"[{slug}_forward] {len(t)} tensors")


# ----------------------------------------------------------------------------- hooks
def golden_hooks():
    model = mf.load_tl("gpt2", "processed")
    tokens = model.to_tokens(mf.PROMPT)
    t = {"tokens": tokens}
    obs = []  # [label, value]: replayed step for step by __test__/surface.test.ts
    n_fwd = lambda: sum(len(hp.fwd_hooks) for hp in model.hook_points())  # noqa: E731
    n_bwd = lambda: sum(len(hp.bwd_hooks) for hp in model.hook_points())  # noqa: E731
    emb = lambda: len(model.hook_dict["hook_embed"].fwd_hooks)  # noqa: E731
    calls = []
    mk = lambda tag: (lambda x, hook: calls.append(tag))  # noqa: E731

    def ran(label):
        obs.append([label, list(calls)])
        calls.clear()

    names = {"hook_points": [hp.name for hp in model.hook_points()], "hook_dict": list(model.hook_dict)}
    _, c = model.run_with_cache(tokens)
    names["fired"] = list(c.keys())

    # Caching hooks.
    cache = {}
    model.cache_all(cache)
    obs.append(["cache_all", [model.is_caching, n_fwd(), n_bwd()]])
    model(tokens)
    obs.append(["cache_all.keys", list(cache)])
    for k, v in cache.items():
        t[f"cache_all.{k}"] = v
    model.reset_hooks()
    obs.append(["reset", [model.is_caching, n_fwd()]])
    cache = {}
    model.cache_some(cache, lambda n: n.endswith("hook_pattern") or n == "hook_embed")
    model(tokens)
    obs.append(["cache_some.keys", list(cache)])
    model.reset_hooks()
    c1 = model.add_caching_hooks(names_filter="blocks.1.hook_resid_post")
    model(tokens)
    obs.append(["add_caching_hooks.str", list(c1)])
    model.reset_hooks()
    c2 = model.add_caching_hooks(names_filter=["hook_embed", "ln_final.hook_normalized"], remove_batch_dim=True)
    model(tokens)
    obs.append(["add_caching_hooks.list", [[k, list(v.shape)] for k, v in c2.items()]])
    model.reset_hooks()
    torch.set_grad_enabled(True)
    cache = {}
    model.cache_some(cache, lambda n: n.startswith("blocks.1.") and "ln" not in n, incl_bwd=True)
    obs.append(["incl_bwd", [n_fwd(), n_bwd()]])
    loss = model(tokens, return_type="loss")
    loss.backward()
    obs.append(["incl_bwd.keys", list(cache)])
    for k, v in cache.items():
        t[f"incl_bwd.{k}"] = v
    model.reset_hooks()
    model.zero_grad(set_to_none=True)
    torch.set_grad_enabled(False)
    pick = ["blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post"]
    cache, fwd, bwd = model.get_caching_hooks(names_filter=lambda n: n in pick, pos_slice=-1)
    obs.append(["get_caching_hooks", [[n for n, _ in fwd], len(bwd), model.is_caching, n_fwd()]])
    with model.hooks(fwd_hooks=fwd):
        model(tokens)
    obs.append(["get_caching_hooks.keys", list(cache)])
    for k, v in cache.items():
        t[f"pos_slice.{k}"] = v

    # Permanent hooks, reset_hooks and remove_all_hook_fns.
    model.add_perma_hook("hook_embed", mk("perma"))
    model.add_hook("hook_embed", mk("temp"))
    obs.append(["added", emb()])
    model(tokens)
    ran("run")
    model.reset_hooks()
    obs.append(["reset", emb()])
    model(tokens)
    ran("run")
    model.remove_all_hook_fns()
    obs.append(["remove_all", emb()])
    model.remove_all_hook_fns(including_permanent=True)
    obs.append(["remove_all_permanent", emb()])

    # run_with_hooks leaves other hooks alone; reset_hooks_end=False keeps its own.
    model.add_hook("hook_embed", mk("temp"))
    model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", mk("rwh"))])
    ran("run_with_hooks")
    obs.append(["after_run_with_hooks", emb()])
    model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", mk("kept"))], reset_hooks_end=False)
    ran("run_with_hooks.kept")
    obs.append(["kept", [emb(), [h.context_level for h in model.hook_dict["hook_embed"].fwd_hooks]]])
    model(tokens)
    ran("run")
    model.reset_hooks()

    # hooks() context levels.
    with model.hooks(fwd_hooks=[("hook_embed", mk("outer"))]):
        obs.append(["outer", [emb(), model.context_level]])
        with model.hooks(fwd_hooks=[("hook_embed", mk("inner"))]):
            obs.append(["inner", [emb(), model.context_level, [h.context_level for h in model.hook_dict["hook_embed"].fwd_hooks]]])
            model(tokens)
            ran("run.inner")
        obs.append(["inner_done", emb()])
        model(tokens)
        ran("run.outer")
    obs.append(["outer_done", [emb(), model.context_level]])

    # Hook contexts.
    def count(x, hook):
        hook.ctx["n"] = hook.ctx.get("n", 0) + 1

    point = model.hook_dict["blocks.0.ln1.hook_scale"]
    model.add_hook("blocks.0.ln1.hook_scale", count)
    model(tokens)
    model(tokens)
    obs.append(["ctx", dict(point.ctx)])
    model.reset_hooks(clear_contexts=False)
    obs.append(["ctx.kept", dict(point.ctx)])
    model.clear_contexts()
    obs.append(["ctx.cleared", dict(point.ctx)])
    model.add_hook("blocks.0.ln1.hook_scale", count)
    model(tokens)
    obs.append(["ctx.again", dict(point.ctx)])
    model.reset_hooks()
    obs.append(["ctx.reset", dict(point.ctx)])

    # HookPoint methods.
    hp = model.hook_dict["blocks.0.hook_resid_pre"]
    hp.add_hook(mk("a"))
    hp.add_hook(mk("b"), prepend=True)
    hp.add_perma_hook(mk("p"))
    hp.add_hook(mk("g"), dir="bwd")
    model(tokens)
    ran("hp.run")
    hp.remove_hooks()
    obs.append(["hp.remove_hooks", [len(hp.fwd_hooks), len(hp.bwd_hooks)]])
    hp.remove_hooks("both", including_permanent=True)
    obs.append(["hp.remove_hooks.all", [len(hp.fwd_hooks), len(hp.bwd_hooks)]])
    hp.add_hook(mk("l3"), level=3)
    hp.add_hook(mk("l4"), level=4)
    hp.remove_hooks(level=3)
    model(tokens)
    ran("hp.level")
    hp.remove_hooks(including_permanent=True)

    # Name filters, and the flag checks of check_hooks_to_add.
    model.add_hook(lambda n: n.endswith("hook_resid_post"), mk("f"))
    obs.append(["filter", [hp.name for hp in model.hook_points() if hp.fwd_hooks]])
    model.reset_hooks()
    f = mk("x")
    obs.append(["flag_error", error_of(lambda: model.add_hook("blocks.0.attn.hook_result", f))])
    model.set_use_attn_result(True)
    model.add_hook("blocks.0.attn.hook_result", f)
    obs.append(["flag_on", len(model.hook_dict["blocks.0.attn.hook_result"].fwd_hooks)])
    model.reset_hooks()
    model.set_use_attn_result(False)

    converted = mf.save_tensors(OUT / "hooks.safetensors", t)
    mf.write_json(OUT / "hooks.json", {
        "model_id": "gpt2", "prompt": mf.PROMPT, "names": names, "steps": obs,
        "converted": converted, "versions": mf.versions()})
    print(f"[hooks] {len(obs)} steps, {len(t)} tensors")


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    for model_id in MODELS:
        golden_processing(model_id)
        golden_forward(model_id)
    golden_hooks()
    for f in OUT.iterdir():
        f.chmod(0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main())
