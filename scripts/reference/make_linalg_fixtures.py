#!/usr/bin/env python
"""TransformerLens goldens for FactoredMatrix, composition scores, QK/OV and SVDInterpreter.

Usage (from anywhere, after make_fixtures.py has built the tiny checkpoints):
    python scripts/reference/make_linalg_fixtures.py

Writes, deterministically (fixed seeds; versions as in requirements.txt):
  __test__/fixtures/golden/linalg/factored_matrix.{safetensors,json}
      FactoredMatrix on seeded random factors (stored as `in.*`): products with vectors,
      matrices and other FactoredMatrices, scalar multiples, AB/BA/T, SVD, norm, eigenvalues,
      collapse_l/r, make_even, indexing, get_corner, utils.get_corner, utils.composition_scores.
  __test__/fixtures/golden/linalg/circuits.{safetensors,json}
      The fixture `gpt2` (processed, and unprocessed for SVDInterpreter's ln2 branch): QK/OV
      products, SVDs, norms, eigenvalues, all_composition_scores(Q/K/V), SVDInterpreter vectors.

Conventions (see also the JSON's "notes"): float32 everywhere; eigenvalues are stored sorted
by (real, imag) as two tensors `*.eig.real` / `*.eig.imag`, since their order is LAPACK's;
singular vectors are TL's own (unique up to sign per vector), stored only where the singular
values are distinct (checked here); FactoredMatrix results are stored as their `A`, `B` and `AB`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (sets the offline HF env, seeds torch's flags)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformer_lens.utils as utils  # noqa: E402
from transformer_lens import FactoredMatrix, SVDInterpreter  # noqa: E402

OUT = mf.GOLDEN / "linalg"
SEED = 2024
MIN_REL_GAP = 1e-3  # singular values this close would make U/V comparisons meaningless


def sorted_eig(ev):
    """Complex eigenvalues [..., n] -> (real, imag) sorted by (real, imag) along the last dim."""
    re = ev.real.numpy().astype(np.float64)
    im = ev.imag.numpy().astype(np.float64)
    flat_re, flat_im = re.reshape(-1, re.shape[-1]), im.reshape(-1, im.shape[-1])
    out_re, out_im = np.empty_like(flat_re), np.empty_like(flat_im)
    for i in range(flat_re.shape[0]):
        order = np.lexsort((flat_im[i], flat_re[i]))
        out_re[i], out_im[i] = flat_re[i][order], flat_im[i][order]
    return torch.tensor(out_re.reshape(re.shape), dtype=torch.float32), torch.tensor(out_im.reshape(im.shape), dtype=torch.float32)


def check_distinct(S, label):
    """Singular values must be pairwise distinct (relative gap) for U/V to be comparable up to sign."""
    s = S.reshape(-1, S.shape[-1]).double()
    gaps = (s[:, :-1] - s[:, 1:]) / s[:, :1].clamp_min(1e-30)
    g = gaps.min().item() if gaps.numel() else 1.0
    assert g > MIN_REL_GAP, f"{label}: singular values too close ({g})"
    return g


def put_fm(t, meta, name, fm, product=True):
    """A FactoredMatrix result: its factors (broadcast, as TL keeps them), product and dims."""
    t[f"{name}.A"], t[f"{name}.B"] = fm.A, fm.B
    if product:
        t[f"{name}.AB"] = fm.AB
    meta[name] = {"shape": list(fm.shape), "ldim": fm.ldim, "mdim": fm.mdim, "rdim": fm.rdim, "ndim": fm.ndim}


def put_spectrum(t, meta, name, fm, vectors=True):
    """AB, S, norm, collapse/make_even, eigenvalues (when square), U/Vh (when S is distinct)."""
    t[f"{name}.AB"] = fm.AB
    t[f"{name}.S"] = fm.S
    t[f"{name}.norm"] = fm.norm()
    t[f"{name}.collapse_l"] = fm.collapse_l()
    t[f"{name}.collapse_r"] = fm.collapse_r()
    even = fm.make_even()  # its product is AB again: stored only for the small matrices
    assert torch.allclose(even.AB, fm.AB, atol=1e-4)
    put_fm(t, meta, f"{name}.make_even", even, product=fm.AB.numel() < 1000)
    if fm.ldim == fm.rdim:
        t[f"{name}.BA"] = fm.BA
        t[f"{name}.eig.real"], t[f"{name}.eig.imag"] = sorted_eig(fm.eigenvalues)
    if vectors:
        meta.setdefault("min_rel_gap", {})[name] = check_distinct(fm.S, name)
        t[f"{name}.U"], t[f"{name}.Vh"] = fm.U, fm.Vh
        # TL's identity: U diag(S) Vh^T == AB (Vh holds V, not V^H).
        assert torch.allclose(fm.U * fm.S[..., None, :] @ fm.Vh.transpose(-1, -2), fm.AB, atol=1e-4)


def factored_matrix_goldens():
    g = torch.Generator().manual_seed(SEED)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    inp = {
        "fm1.A": r(2, 5, 3), "fm1.B": r(3, 5),      # leading dims broadcast; mdim < ldim = rdim
        "fm2.A": r(4, 6), "fm2.B": r(6, 4),         # mdim > ldim = rdim
        "fm3.A": r(5, 2), "fm3.B": r(2, 4),         # right operand of fm1 @ fm3
        "fm4.A": r(4, 2), "fm4.B": r(2, 5),         # left operand of fm4 @ fm1
        "vec5": r(5), "mat_r": r(5, 7), "mat_l": r(7, 5), "mat_r2": r(4, 2), "mat_l2": r(3, 4),
        "cs_right.A": r(3, 5, 4), "cs_right.B": r(4, 6),
        "cs_pair.A": r(2, 5, 4), "cs_pair.B": r(4, 6),
        "corner": r(4, 5, 6),
        "square": r(3, 4, 4),
        "cs_wide.A": r(3, 4, 5), "cs_wide.B": r(5, 6),
    }
    scalar = 2.5
    fm = {k: FactoredMatrix(inp[f"{k}.A"], inp[f"{k}.B"]) for k in ["fm1", "fm2", "fm3", "fm4", "cs_right", "cs_pair", "cs_wide"]}
    fm1, fm2 = fm["fm1"], fm["fm2"]
    t = {f"in.{k}": v for k, v in inp.items()}
    meta = {}

    for name in ["fm1", "fm2"]:
        put_fm(t, meta, name, fm[name])
        put_spectrum(t, meta, name, fm[name])
        put_fm(t, meta, f"{name}.T", fm[name].T)
        t[f"{name}.get_corner"] = fm[name].get_corner()
        t[f"{name}.get_corner2"] = fm[name].get_corner(2)
        t[f"{name}.utils_get_corner2"] = utils.get_corner(fm[name], 2)

    t["fm1.matmul_vec"] = fm1 @ inp["vec5"]
    t["fm1.rmatmul_vec"] = inp["vec5"] @ fm1
    put_fm(t, meta, "fm1.matmul_mat", fm1 @ inp["mat_r"])        # rdim > mdim: into B
    put_fm(t, meta, "fm1.rmatmul_mat", inp["mat_l"] @ fm1)       # ldim > mdim: into A
    put_fm(t, meta, "fm2.matmul_mat", fm2 @ inp["mat_r2"])       # rdim <= mdim: AB becomes A
    put_fm(t, meta, "fm2.rmatmul_mat", inp["mat_l2"] @ fm2)      # ldim <= mdim: AB becomes B
    put_fm(t, meta, "fm1.matmul_fm3", fm1 @ fm["fm3"])
    put_fm(t, meta, "fm4.matmul_fm1", fm["fm4"] @ fm1)
    put_fm(t, meta, "fm1.mul", fm1 * scalar)
    put_fm(t, meta, "fm1.rmul", scalar * fm1)

    index_cases = {  # name -> (TL index, the same index in the JS test's notation)
        "int": ((1,), [1]),
        "row_int": ((0, 2), [0, 2]),
        "row_range": ((slice(None), slice(2, 4)), [None, [2, 4]]),
        "full": ((1, slice(1, 3), 4), [1, [1, 3], 4]),
        "full_ranges": ((slice(0, 1), slice(None), slice(1, 4)), [[0, 1], None, [1, 4]]),
    }
    meta["index_cases"] = {}
    for name, (idx, js) in index_cases.items():
        put_fm(t, meta, f"fm1.get.{name}", fm1[idx])
        meta["index_cases"][name] = js
    meta["fm1.unsqueeze0"] = {"shape": list(fm1.unsqueeze(0).shape)}

    t["composition.broadcast"] = utils.composition_scores(fm1, fm["cs_right"])
    t["composition.paired"] = utils.composition_scores(fm1, fm["cs_pair"], broadcast_dims=False)
    t["composition.plain"] = utils.composition_scores(fm2, fm2)  # no leading dims: 0-d
    t["composition.left2d"] = utils.composition_scores(fm2, fm["cs_wide"])  # [3]
    t["composition.right2d"] = utils.composition_scores(fm["cs_wide"].T, fm2)  # [3]
    t["utils_get_corner.tensor"] = utils.get_corner(inp["corner"], 2)

    # Plain torch.linalg on tensors (what Tensor.svd / Tensor.eigenvalues stand for).
    for name in ["mat_l", "fm1.A"]:
        U, S, Vh = torch.linalg.svd(inp[name], full_matrices=False)
        meta.setdefault("tensor_svd_min_rel_gap", {})[name] = check_distinct(S, name)
        t[f"tensor_svd.{name}.U"], t[f"tensor_svd.{name}.S"], t[f"tensor_svd.{name}.Vh"] = U, S, Vh
    t["tensor_eig.square.real"], t["tensor_eig.square.imag"] = sorted_eig(torch.linalg.eig(inp["square"]).eigenvalues)

    OUT.mkdir(parents=True, exist_ok=True)
    converted = mf.save_tensors(OUT / "factored_matrix.safetensors", t)
    mf.write_json(OUT / "factored_matrix.json", {
        "seed": SEED,
        "scalar": scalar,
        "fm": meta,
        "repr": {"fm1": repr(fm1)},
        "notes": "in.* are the inputs; *.eig.* sorted by (real, imag); *.U/*.Vh are TL's (Vh holds V), unique up to sign per column; tensor_svd.* are torch.linalg.svd(full_matrices=False) (a true Vh)",
        "converted": converted,
        "versions": mf.versions(),
    })


def svd_vectors(model, cases):
    interp = SVDInterpreter(model)
    return {name: interp.get_singular_vectors(vt, layer_index=layer, num_vectors=n, head_index=head) for name, (vt, layer, n, head) in cases.items()}


SVD_CASES = {  # name -> (vector_type, layer_index, num_vectors, head_index)
    "processed": {
        "ov_l1_h2_n5": ("OV", 1, 5, 2),
        "w_in_l0_n10": ("w_in", 0, 10, None),
        "w_out_l2_n6": ("w_out", 2, 6, None),
    },
    "unprocessed": {
        "w_in_l1_n4": ("w_in", 1, 4, None),  # ln2.w is in the params: W_in^T * ln2.w
        "ov_l0_h3_n8": ("OV", 0, 8, 3),
    },
}


def circuits_goldens():
    t, meta = {}, {}
    model = mf.load_tl("gpt2", "processed")
    for name, fm in [("QK", model.QK), ("OV", model.OV)]:
        put_spectrum(t, meta, name, fm)
        meta[name] = {"shape": list(fm.shape), "ldim": fm.ldim, "mdim": fm.mdim, "rdim": fm.rdim}
    for mode in ["Q", "K", "V"]:
        t[f"composition.{mode}"] = model.all_composition_scores(mode)
    meta["all_head_labels"] = model.all_head_labels()
    for mode_name, cases in SVD_CASES.items():
        m = model if mode_name == "processed" else mf.load_tl("gpt2", "unprocessed")
        assert (f"blocks.1.ln2.w" in dict(m.named_parameters())) == (mode_name == "unprocessed")
        for name, v in svd_vectors(m, cases).items():
            t[f"svd.{mode_name}.{name}"] = v
        # The singular values behind each case must be distinct for a sign-only comparison.
        for name, (vt, layer, n, head) in cases.items():
            if vt == "OV":
                S = FactoredMatrix(m.W_V[layer, head], m.W_O[layer, head]).S
            else:
                interp = SVDInterpreter(m)
                mat = interp._get_w_in_matrix(layer) if vt == "w_in" else interp._get_w_out_matrix(layer)
                S = torch.linalg.svd(mat).S
            meta.setdefault("svd_min_rel_gap", {})[f"{mode_name}.{name}"] = check_distinct(S[: n + 1], name)
    meta["svd_cases"] = SVD_CASES

    converted = mf.save_tensors(OUT / "circuits.safetensors", t)
    mf.write_json(OUT / "circuits.json", {
        "model_id": "gpt2",
        "loaders": {"processed": "from_pretrained", "unprocessed": "from_pretrained_no_processing"},
        "meta": meta,
        "notes": "svd.* are SVDInterpreter.get_singular_vectors outputs [d_vocab, 1, n], unique up to sign per vector (last dim)",
        "converted": converted,
        "versions": mf.versions(),
    })


def main():
    factored_matrix_goldens()
    circuits_goldens()
    for stray in [p for p in mf.HUB.rglob("*") if p.name in (".locks", ".no_exist")]:
        mf.shutil.rmtree(stray, ignore_errors=True)
    mf.shutil.rmtree(mf.os.environ["HF_HOME"], ignore_errors=True)
    for f in sorted(OUT.iterdir()):
        print(f"{f.stat().st_size:>9}  {f.relative_to(mf.FIXTURES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
