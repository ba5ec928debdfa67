#!/usr/bin/env python
"""PyTorch zip-pickle checkpoints (`pytorch_model.bin`) of the fixture `gpt2`, for the Rust reader
of torch.save files (crates/engine/src/load/{zip,pickle,torch_bin}.rs).

Usage:  python scripts/reference/make_pickle_fixtures.py   (after make_fixtures.py; offline)

Reads __test__/fixtures/hub/models--gpt2 and writes __test__/fixtures/pickle/:
  gpt2-bin/          save_pretrained(safe_serialization=False): pytorch_model.bin, config.json,
                     generation_config.json, plus the snapshot's tokenizer files.
  gpt2-bin-sharded/  the same in shards of at most 100KB (pytorch_model-0000x-of-0000y.bin and
                     pytorch_model.bin.index.json) with config.json.
  gpt2-bin-strided-f16/  torch.save of the state dict in float16 with every 2-D weight stored
                     column-major (a non-contiguous view) and ln_f's weight and bias as views at
                     offsets 32 and 0 of one shared storage; config.json.
  gpt2-bin-legacy-f16/  the float16 state dict in torch's legacy format
                     (_use_new_zipfile_serialization=False), storage keys (memory addresses)
                     renamed 000, 001, ... so the file is reproducible; config.json.
  hostile/posix_system.bin    torch.save of {"w": tensor, "x": obj} where obj reduces to
                     os.system("echo pwned") (a `posix.system` GLOBAL + REDUCE); never run it.
  hostile/unknown_opcode.bin  a valid torch.save whose data.pkl has an 0xff opcode after PROTO
                     (the archive rewritten by zipfile, stored, CRCs recomputed).
and the seed corpus of the cargo-fuzz `pickle` target, crates/engine/fuzz/corpus/pickle/: data.pkl
files that read the storages of gpt2-bin (each checked to name only storages of the same size):
the seed's own, torch.save of model.state_dict() (OrderedDict + `_metadata` BUILD), of
state_dict(keep_vars=True) (`_rebuild_parameter`), with a transposed c_proj view, with ln_f.bias
as a view into wte, and the two hostile pickles.
"""
import io
import os
import pickle
import pickletools
import shutil
import zipfile
from pathlib import Path

import make_fixtures as mf  # sets the offline HF environment before transformers loads
import torch
from transformers import GPT2LMHeadModel

OUT = mf.FIXTURES / "pickle"
CORPUS = mf.ROOT / "crates" / "engine" / "fuzz" / "corpus" / "pickle"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


class Evil:
    """Pickles as a call of os.system: what the reader must refuse without running it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def fresh(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def strided_f16(model):
    sd = {}
    for name, t in model.state_dict().items():
        t = t.detach().to(torch.float16)
        # Column-major storage: same values, strides (1, rows).
        sd[name] = t.t().contiguous().t() if t.dim() == 2 else t.clone()
    w, b = sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]
    shared = torch.cat([b, w])
    sd["transformer.ln_f.bias"], sd["transformer.ln_f.weight"] = shared[: b.numel()], shared[b.numel():]
    assert not sd["transformer.h.0.attn.c_attn.weight"].is_contiguous()
    assert sd["transformer.ln_f.weight"].storage_offset() == b.numel()
    return sd


def legacy_save(sd, dst):
    """torch.save in the legacy format, float16 only. Its storage keys are memory addresses and
    its storages are in their sorted order: both are renamed / reordered by first use
    (000, 001, ...) so the file is reproducible."""
    assert all(t.dtype == torch.float16 for t in sd.values())
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    f = io.BytesIO(data)
    pickles = []
    for _ in range(5):  # magic, protocol, sys_info, the state dict, the storage keys
        start = f.tell()
        for _op in pickletools.genops(f):  # walks to STOP without running anything
            pass
        pickles.append(data[start:f.tell()])
    keys = pickle.loads(pickles[4])
    records, at = {}, f.tell()
    for k in keys:  # each: int64 element count, then the float16 elements
        n = int.from_bytes(data[at:at + 8], "little")
        records[k], at = data[at:at + 8 + 2 * n], at + 8 + 2 * n
    assert at == len(data)
    used = [arg for op, arg, _ in pickletools.genops(pickles[3]) if op.name == "BINUNICODE" and arg in records]
    renamed = {k: f"{i:03d}" for i, k in enumerate(dict.fromkeys(used))}
    assert len(renamed) == len(keys)
    obj = pickles[3]
    for old, new in renamed.items():
        a, b = old.encode(), new.encode()
        obj = obj.replace(b"X" + len(a).to_bytes(4, "little") + a, b"X" + len(b).to_bytes(4, "little") + b)
    order = sorted(keys, key=renamed.get)
    out = b"".join(pickles[:3]) + obj + pickle.dumps([renamed[k] for k in order], protocol=2)
    Path(dst).write_bytes(out + b"".join(records[k] for k in order))


def unknown_opcode(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                assert data[:2] == b"\x80\x02"
                data = data[:2] + b"\xff" + data[2:]
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
            zout.writestr(fixed, data, compress_type=zipfile.ZIP_STORED)


def archive(data):
    """{entry name without the archive folder: bytes} of a torch.save archive."""
    with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as z:
        return {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}


def saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return archive(buf.getvalue())


def corpus(model, seed_bin):
    seed = archive(seed_bin)
    storages = {n: len(b) for n, b in seed.items() if n.startswith("data/")}
    sd = model.state_dict()
    with torch.no_grad():
        transposed = dict(sd)
        w = transposed["transformer.h.1.attn.c_proj.weight"]
        transposed["transformer.h.1.attn.c_proj.weight"] = w.t()
        offset = dict(sd)
        offset["transformer.ln_f.bias"] = sd["transformer.wte.weight"].view(-1)[100:132]
    cases = {
        "seed.pkl": seed,
        "state-dict-metadata.pkl": saved(sd),
        "parameters.pkl": saved(model.state_dict(keep_vars=True)),
        "transposed-c_proj.pkl": saved(transposed),
        "offset-view-ln_f-bias.pkl": saved(offset),
        "posix-system.pkl": archive(OUT / "hostile" / "posix_system.bin"),
        "unknown-opcode.pkl": archive(OUT / "hostile" / "unknown_opcode.bin"),
    }
    fresh(CORPUS)
    for name, entries in cases.items():
        for n, b in entries.items():
            if n.startswith("data/") and not name.startswith(("posix", "unknown")):
                assert storages.get(n) == len(b), f"{name}: storage {n} of {len(b)} bytes is not the seed's"
        (CORPUS / name).write_bytes(entries["data.pkl"])


def main():
    torch.manual_seed(0)
    snap = mf.snapshot_dir("gpt2")
    model = GPT2LMHeadModel.from_pretrained(str(snap)).eval()

    single = fresh(OUT / "gpt2-bin")
    model.save_pretrained(single, safe_serialization=False)
    for f in TOKENIZER_FILES:
        shutil.copy(snap / f, single / f)
    assert (single / "pytorch_model.bin").exists() and not (single / "model.safetensors").exists()

    sharded = fresh(OUT / "gpt2-bin-sharded")
    model.save_pretrained(sharded, safe_serialization=False, max_shard_size="100KB")
    (sharded / "generation_config.json").unlink(missing_ok=True)
    assert (sharded / "pytorch_model.bin.index.json").exists()

    strided = fresh(OUT / "gpt2-bin-strided-f16")
    shutil.copy(single / "config.json", strided / "config.json")
    torch.save(strided_f16(model), strided / "pytorch_model.bin")

    legacy = fresh(OUT / "gpt2-bin-legacy-f16")
    shutil.copy(single / "config.json", legacy / "config.json")
    legacy_save({k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}, legacy / "pytorch_model.bin")
    reloaded = torch.load(legacy / "pytorch_model.bin")
    assert all(torch.equal(reloaded[k], v.to(torch.float16)) for k, v in model.state_dict().items())

    hostile = fresh(OUT / "hostile")
    torch.save({"w": torch.ones(2), "x": Evil()}, hostile / "posix_system.bin")
    tmp = hostile / "valid.tmp"
    torch.save({"w": torch.ones(2)}, tmp)
    unknown_opcode(tmp, hostile / "unknown_opcode.bin")
    tmp.unlink()

    corpus(model, (single / "pytorch_model.bin").read_bytes())

    for p in sorted(OUT.rglob("*")) + sorted(CORPUS.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(mf.ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
