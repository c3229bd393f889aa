"""Hugging Face GPTQ / AWQ int4 checkpoints (edgeconv/sources/hf_quant.py, int_blocks.py): a tiny llama / qwen2
HF folder made from a random config, its linears quantized here and packed in GPTQ (v1 / v2 zeros, sym / asym,
act-order) and AWQ GEMM layouts by this file's own packers (written from the layouts AutoGPTQ's QuantLinear.pack
and AutoAWQ's WQLinear_GEMM.from_linear produce), then exported with `--quant keep`:
  - the .edge blocks dequantize bit for bit to the checkpoint's w = s·(q − z) (computed here, in float64);
  - edgerun's logits match the models/ reference on those weights within TOL_INT_DOT;
  - weights no .edge dtype holds (scales whose m = −s·z is off the f16 grid, groups of 16, act-order) are
    re-quantized with one note per reason.
With AutoAWQ importable (PYTHONPATH with `pip install --no-deps autoawq`), its own packer makes one checkpoint too.

Cost: 8 tiny exports + reference forwards: ~20 s on 2 cores.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_np = pytest.importorskip("safetensors.numpy")

import edgerun  # noqa: E402
from edgeconv.export import export  # noqa: E402
from edgeconv.format import EdgeFile  # noqa: E402
from edgeconv.quant import dequantize  # noqa: E402
from models.edge_loader import edge_weights  # noqa: E402
from models.hf_names import convert_state_dict  # noqa: E402
from models.llama import Reference  # noqa: E402
from models.tiny import make_tiny  # noqa: E402
from test_runtime import TOKENS, TOL_INT_DOT, rel_err  # noqa: E402

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
BIG = dict(hidden_size=128, intermediate_size=256, head_dim=32)  # every K a multiple of 128


def quantize_groups(w: np.ndarray, group: int, kind: str, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w float [N, K] -> (codes int [N, K], zeros int [ng, N], scales f16 [ng, N]), groups of `group` inputs.
    kind: "sym" (zero 8), "grid" (asymmetric, scales with 6 significant bits so s·z is on the f16 grid), "off"
    (asymmetric, full f16 scales and odd zeros: s·z off the grid)."""
    n, k = w.shape
    g = k if group == -1 else group
    ng = -(-k // g)
    q = np.zeros((n, k), np.int64)
    zeros = np.zeros((ng, n), np.int64)
    scales = np.zeros((ng, n), np.float16)
    for i in range(ng):
        blk = w[:, i * g:(i + 1) * g].astype(np.float64)
        if kind == "sym":
            s = np.maximum(np.abs(blk).max(1), 1e-3) / 7.5
            z = np.full(n, 8)
        else:
            lo, hi = np.minimum(blk.min(1), -1e-3), np.maximum(blk.max(1), 1e-3)
            s = (hi - lo) / 15
            z = np.clip(np.round(-lo / s), 0, 15).astype(np.int64)
        s16 = s.astype(np.float16)
        if kind == "grid":  # keep 6 significant bits (rounded up: the range still fits): s·z (z < 16) needs 10
            m, e = np.frexp(s)
            s16 = np.ldexp(np.ceil(m * 64) / 64, e).astype(np.float16)
        elif kind == "off":
            z = z | 1  # odd zeros: s·z keeps s's low mantissa bits and more
            s16 = (s16.view(np.uint16) | 1).view(np.float16)  # full 11-bit significands
        q[:, i * g:(i + 1) * g] = np.clip(np.round(blk / s16.astype(np.float64)[:, None]) + z[:, None], 0, 15)
        zeros[i], scales[i] = z, s16
    return q, zeros, scales


def dequant_ref(q, zeros, scales, gk) -> np.ndarray:
    """The checkpoint's weight [N, K]: s[g(k), n]·(q[n, k] − z[g(k), n]), in float64 (exact), as float32."""
    s = scales.astype(np.float64)[gk].T
    return (s * (q - zeros[gk].T)).astype(np.float32)


def pack_gptq(q, zeros, scales, gk, v1: bool) -> dict[str, np.ndarray]:
    """GPTQ layout (AutoGPTQ QuantLinear.pack): qweight [K/8, N] with input 8r + j at bits 4j of row r,
    qzeros [ng, N/8] with output 8c + j at bits 4j of column c, stored as zero − 1 in v1."""
    n, k = q.shape
    qt = q.T.astype(np.uint32)
    qweight = np.zeros((k // 8, n), np.uint32)
    for j in range(8):
        qweight |= qt[j::8] << (4 * j)
    z = (zeros - 1 if v1 else zeros).astype(np.uint32) & 15
    qzeros = np.zeros((z.shape[0], n // 8), np.uint32)
    for j in range(8):
        qzeros |= z[:, j::8] << (4 * j)
    return {"qweight": qweight.view(np.int32), "qzeros": qzeros.view(np.int32), "scales": scales,
            "g_idx": gk.astype(np.int32)}


def pack_awq(q, zeros, scales) -> dict[str, np.ndarray]:
    """AWQ GEMM layout (AutoAWQ WQLinear_GEMM.from_linear): qweight [K, N/8], output 8c + ORDER[i] at bits 4i of
    column c; qzeros [ng, N/8] packed the same way."""
    def pack(a):  # a [rows, N]
        out = np.zeros((a.shape[0], a.shape[1] // 8), np.uint32)
        for i, o in enumerate(AWQ_ORDER):
            out |= a[:, o::8].astype(np.uint32) << (4 * i)
        return out.view(np.int32)
    return {"qweight": pack(q.T), "qzeros": pack(zeros), "scales": scales}


def make_checkpoint(folder, arch: str, method: str, group: int, kind: str, v1: bool = True, act_order: bool = False,
                    overrides: dict | None = None, packer=None):
    """A tiny HF folder whose linears are packed; returns {P.weight: the checkpoint's dequantized weight}."""
    hf, _, _ = make_tiny(arch, seed=3, dir=folder, **(overrides or {}))
    sd = {k: v.detach().numpy().copy() for k, v in hf.state_dict().items()}
    rng = np.random.default_rng(7)
    out, deq = {}, {}
    for name, w in sd.items():
        p = name[:-len(".weight")]
        if not (name.endswith(".weight") and p.split(".", 3)[-1] in LINEARS):
            out[name] = w
            continue
        k = w.shape[1]
        gk = np.arange(k) // (k if group == -1 else group)
        if act_order:  # desc_act: the groups follow a permutation of the inputs
            gk = gk[rng.permutation(k)]
        q, zeros, scales = (_quantize_by_index(w, gk, group, kind, rng) if act_order else
                            quantize_groups(w, group, kind, rng))
        deq[name] = dequant_ref(q, zeros, scales, gk)
        parts = packer(deq[name], q, zeros, scales, gk, group) if packer else (
            pack_gptq(q, zeros, scales, gk, v1) if method == "gptq" else pack_awq(q, zeros, scales))
        out.update({f"{p}.{part}": a for part, a in parts.items()})
    os.remove(os.path.join(folder, "model.safetensors"))
    safetensors_np.save_file({k: np.ascontiguousarray(v) for k, v in out.items()},
                             os.path.join(folder, "model.safetensors"))
    cfg_path = os.path.join(folder, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = (
        {"quant_method": "gptq", "bits": 4, "group_size": group, "sym": kind == "sym", "desc_act": act_order,
         "checkpoint_format": "gptq" if v1 else "gptq_v2"} if method == "gptq" else
        {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True, "version": "gemm"})
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return deq


def _quantize_by_index(w, gk, g, kind, rng):
    """quantize_groups for an act-order assignment: gather each group's inputs, quantize, scatter back."""
    order = np.argsort(gk, kind="stable")
    q, zeros, scales = quantize_groups(w[:, order], g, kind, rng)
    back = np.empty_like(q)
    back[:, order] = q
    return back, zeros, scales


def expected_block(k: int, group: int) -> int:
    g = k if group == -1 else group
    return next(b for b in (128, 64, 32) if k % b == 0 and g % b == 0)


def check_exact_and_logits(folder, out, deq: dict, want_prefix: str, group: int, log) -> None:
    """Every packed linear is stored as <want_prefix>_<block>, dequantizes bit for bit to the checkpoint's
    weight, and edgerun's logits match the reference on those weights."""
    res = export(str(folder), str(out), recipe="keep", log=log)
    assert any("kept their stored blocks exactly" in n for n in res.notes), res.notes
    assert not any("no exact .edge form" in n for n in res.notes), res.notes
    meta, weights = edge_weights(out)
    ours = convert_state_dict(deq, tied_head=True)  # the linears only
    with EdgeFile(out) as f:
        for name, w in ours.items():
            t = f.tensor(name)
            assert t.dtype == f"{want_prefix}_{expected_block(w.shape[1], group)}", (name, t.dtype)
            got = dequantize(np.asarray(f.raw(name)).reshape(t.shape[0], -1), t.dtype, t.shape)
            np.testing.assert_array_equal(got, w, err_msg=name)
    ref_w = dict(weights)
    ref_w.update(ours)  # the linears from the checkpoint (independent of the .edge reader)
    ref = Reference(meta, ref_w).logits(torch.tensor(TOKENS)).numpy()
    got = edgerun.Model(str(out), threads=2, kv="f32").logits(TOKENS)
    assert rel_err(got, ref) < TOL_INT_DOT


@pytest.mark.parametrize("arch,method,group,kind,v1,overrides,want", [
    ("llama", "gptq", 32, "sym", True, {}, "int4"),
    ("qwen2", "gptq", 128, "sym", True, BIG, "int4"),
    ("llama", "gptq", 32, "grid", True, {}, "int4a"),
    ("qwen2", "gptq", 128, "grid", False, BIG, "int4a"),
    ("llama", "gptq", 64, "sym", False, {}, "int4"),      # K = 96: groups of 64 stored as blocks of 32
    ("llama", "gptq", -1, "grid", True, BIG, "int4a"),     # one group per row: blocks of 128 repeating it
    ("qwen2", "awq", 32, "grid", False, dict(intermediate_size=128), "int4a"),
    ("llama", "awq", 128, "grid", False, BIG, "int4a"),
])
def test_exact_import(tmp_path, arch, method, group, kind, v1, overrides, want):
    deq = make_checkpoint(tmp_path / "hf", arch, method, group, kind, v1, overrides=overrides)
    check_exact_and_logits(tmp_path / "hf", tmp_path / "m.edge", deq, want, group, log=None)


@pytest.mark.parametrize("method,group,kind,act_order,why", [
    ("awq", 32, "off", False, "not on the f16 grid"),
    ("gptq", 32, "off", False, "not on the f16 grid"),
    ("gptq", 16, "sym", False, "groups of 16"),
    ("gptq", 32, "sym", True, "act-order"),
])
def test_inexact_is_requantized_with_note(tmp_path, method, group, kind, act_order, why):
    deq = make_checkpoint(tmp_path / "hf", "llama", method, group, kind, act_order=act_order)
    out = tmp_path / "m.edge"
    res = export(str(tmp_path / "hf"), str(out), recipe="keep")
    notes = [n for n in res.notes if "no exact .edge form" in n]
    assert len(notes) == 1 and why in notes[0], res.notes
    assert f"{len(deq)} {method.upper()} weights" in notes[0]
    meta, weights = edge_weights(out)
    ours = convert_state_dict(deq, tied_head=True)  # the linears only
    with EdgeFile(out) as f:
        for name, w in ours.items():
            assert f.tensor(name).dtype == "q8_0", name  # keep's choice for weights it cannot keep
            err = np.abs(weights[name] - w).max()
            assert 0 < err <= np.abs(w).max() / 127, name  # re-quantized: within a q8_0 step of the checkpoint
    ref_w = dict(weights)
    ref_w.update(ours)
    ref = Reference(meta, ref_w).logits(torch.tensor(TOKENS)).numpy()
    got = edgerun.Model(str(out), threads=2, kv="f32").logits(TOKENS)
    assert rel_err(got, ref) < TOL_INT_DOT


def test_int4_recipe_copies_matching_blocks(tmp_path):
    """--quant int4 picks int4_32 for the tied embedding and int4_64 elsewhere: a GPTQ sym group-64 checkpoint's
    int4_64 tensors are copied, not re-quantized; a bad quantization_config is one clear error."""
    deq = make_checkpoint(tmp_path / "hf", "qwen2", "gptq", 64, "sym", overrides=dict(intermediate_size=128))
    res = export(str(tmp_path / "hf"), str(tmp_path / "m.edge"), recipe="int4")
    meta, weights = edge_weights(tmp_path / "m.edge")
    ours = convert_state_dict(deq, tied_head=True)  # the linears only
    with EdgeFile(tmp_path / "m.edge") as f:
        same = [n for n, w in ours.items() if f.tensor(n).dtype == "int4_64" and np.array_equal(weights[n], w)]
    assert same and any("kept their stored blocks exactly" in n for n in res.notes), res.notes
    cfg_path = tmp_path / "hf" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemv"}
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="AWQ version 'gemv' is not supported"):
        export(str(tmp_path / "hf"), str(tmp_path / "n.edge"), recipe="keep")


def test_quantize_config_json_and_bad_tensors(tmp_path):
    """AutoGPTQ's own quantize_config.json (no quantization_config in config.json, no quant_method) is read; packed
    tensors that do not fit one linear are one error naming the folder and the linear."""
    folder = tmp_path / "hf"
    deq = make_checkpoint(folder, "llama", "gptq", 32, "sym")
    cfg = json.loads((folder / "config.json").read_text())
    qc = cfg.pop("quantization_config")
    qc.pop("quant_method")
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "quantize_config.json").write_text(json.dumps(qc))
    res = export(str(folder), str(tmp_path / "m.edge"), recipe="keep")
    assert any(f"{len(deq)} tensors kept their stored blocks exactly" in n for n in res.notes), res.notes
    sd = safetensors_np.load_file(str(folder / "model.safetensors"))
    p = "model.layers.1.mlp.down_proj"
    sd[f"{p}.qzeros"] = sd[f"{p}.qzeros"][:, :-1].copy()
    safetensors_np.save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=f"{folder}.*{p}.*do not fit one linear"):
        export(str(folder), str(tmp_path / "n.edge"), recipe="keep")


def _bare_import(monkeypatch, packages: tuple[str, ...], modules: tuple[str, ...], hint: str):
    """Import `modules` of an installed package without running its packages' __init__.py (AutoAWQ's and
    AutoGPTQ's import their model zoos, datasets, CUDA kernels, ...; the packers need none of it): the packages
    are entered as bare namespaces for the duration of the test. Skips when the package is absent."""
    import importlib
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec(packages[0])
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{packages[0]} is not installed ({hint})")
    root = list(spec.submodule_search_locations)[0]
    for pkg in packages:
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
        monkeypatch.setitem(sys.modules, pkg, mod)
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        got = [importlib.import_module(name) for name in modules]
    except ImportError as e:
        pytest.skip(f"{packages[0]}'s packer does not import here: {e}")
    for name in modules:
        monkeypatch.setitem(sys.modules, name, sys.modules[name])  # removed again after the test
    return got


def _autoawq(monkeypatch):
    """AutoAWQ's packer and unpacker (awq/modules/linear/gemm.py, awq/utils/packing_utils.py), or a skip."""
    packing, gemm = _bare_import(monkeypatch, ("awq", "awq.modules", "awq.modules.linear", "awq.utils"),
                                 ("awq.utils.packing_utils", "awq.modules.linear.gemm"),
                                 "pip install --no-deps autoawq; PYTHONPATH to it")
    return gemm.WQLinear_GEMM, packing.dequantize_gemm


@pytest.mark.parametrize("kind,act_order,want", [("sym", False, "int4"), ("grid", False, "int4a"),
                                                 ("sym", True, None)])
def test_autogptq_packed_checkpoint(tmp_path, monkeypatch, kind, act_order, want):
    """Checkpoints packed by AutoGPTQ's own QuantLinear.pack (auto_gptq/nn_modules/qlinear/qlinear_cuda.py: v1
    zeros, its g_idx; skipped without AutoGPTQ) from our scales / zeros and the weights they quantize exactly:
    imported bit for bit (act-order: re-quantized with its note)."""
    (qlinear,) = _bare_import(monkeypatch, ("auto_gptq", "auto_gptq.nn_modules", "auto_gptq.nn_modules.qlinear"),
                              ("auto_gptq.nn_modules.qlinear.qlinear_cuda",),
                              "pip install --no-deps auto-gptq==0.7.1; PYTHONPATH to it")

    def packer(w, q, zeros, scales, gk, group):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))  # already on the grid: pack's rounding gives back q
        m = qlinear.QuantLinear(4, group, w.shape[1], w.shape[0], False, weight_dtype=torch.float32)
        m.pack(lin, torch.from_numpy(scales.astype(np.float32).T.copy()),
               torch.from_numpy(zeros.astype(np.float32).T.copy()), torch.from_numpy(gk.astype(np.int32)))
        return {"qweight": m.qweight.numpy(), "qzeros": m.qzeros.numpy(),
                "scales": m.scales.numpy().astype(np.float16), "g_idx": m.g_idx.numpy()}  # f16, as f16 models store

    folder = tmp_path / "hf"
    deq = make_checkpoint(folder, "llama", "gptq", 32, kind, act_order=act_order, packer=packer)
    if want:
        check_exact_and_logits(folder, tmp_path / "m.edge", deq, want, 32, log=None)
    else:
        res = export(str(folder), str(tmp_path / "m.edge"), recipe="keep")
        assert [n for n in res.notes if "no exact .edge form" in n and "act-order" in n], res.notes


def test_autoawq_packed_checkpoint(tmp_path, monkeypatch):
    """The checkpoint packed by AutoAWQ itself (WQLinear_GEMM.from_linear on our scales / zeros; skipped without
    AutoAWQ): its codes are AutoAWQ's rounding of (w + s·z) / s, so the reference is AutoAWQ's own unpacker
    (dequantize_gemm) on its qweight / qzeros, in f32 (exact)."""
    wq_linear, dequantize_gemm = _autoawq(monkeypatch)

    def packer(w, q, zeros, scales, gk, group):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
        m = wq_linear.from_linear(lin, 4, group, scales=torch.from_numpy(scales.astype(np.float32)),
                                  zeros=torch.from_numpy(zeros.astype(np.float32)))
        return {"qweight": m.qweight.numpy(), "qzeros": m.qzeros.numpy(), "scales": m.scales.numpy()}

    folder = tmp_path / "hf"
    make_checkpoint(folder, "llama", "awq", 32, "grid", packer=packer)
    sd = safetensors_np.load_file(str(folder / "model.safetensors"))
    deq = {}
    for name in sd:
        if name.endswith(".qweight"):
            p = name[:-len(".qweight")]
            w = dequantize_gemm(torch.from_numpy(sd[name]), torch.from_numpy(sd[p + ".qzeros"]),
                                torch.from_numpy(sd[p + ".scales"]).float(), 4, 32)  # [K, N]
            deq[p + ".weight"] = w.T.contiguous().numpy()
    assert len(deq) == 7 * 2
    check_exact_and_logits(folder, tmp_path / "m.edge", deq, "int4a", 32, log=None)
