"""Hugging Face GPTQ and AWQ int checkpoints: read `quantization_config`, decode one packed linear, and hand it
to int_blocks.IntBlocks, which decides the exact .edge dtype (int4_B / int4a_B / q8_0) or says why there is none.

quantization_config (config.json, or AutoGPTQ's quantize_config.json beside it):
  gptq  bits 2 / 4 / 8, group_size (-1 = one group per row), desc_act, sym, checkpoint_format "gptq" (v1, the
        default: the stored zero points are zero − 1) or "gptq_v2" (stored as they are)
  awq   version "gemm" (other kernels' layouts are refused), bits 4, group_size, zero_point

Per linear `P` (P.weight of the float model), K = in_features, N = out_features, g = group size, w = s·(q − z):
  GPTQ  P.qweight int32 [K·bits/32, N]: word [r, n] holds inputs r·32/bits + j at bits bits·j (low first)
        P.qzeros  int32 [ceil(K/g), N·bits/32]: word [i, c] holds outputs c·32/bits + j at bits bits·j
        (words of another integer width — GPTQModel has a pack_dtype option — are read as width/bits fields the same
        way; only int32 files, the default of every packer, are tested)
        P.scales  f16 [ceil(K/g), N]; P.g_idx int32 [K]: the group of input k (absent: k // g)
        (AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py QuantLinear.pack: `qweight[row] |= intweight[j]
        << (bits·(j − i))` over rows of inputs, `zeros -= 1` before packing qzeros along the outputs; its forward
        unpacks with `>> wf` and adds 1 back. GPTQModel's v2 format drops the − 1.)
  AWQ   P.qweight int32 [K, N/8]: word [k, c] holds outputs c·8 + ORDER[i] at bits 4i, ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
        P.qzeros  int32 [K/g, N/8], the same packing; P.scales f16 [K/g, N]
        (AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.from_linear: `order_map = [0, 2, 4, 6, 1, 3, 5, 7]`,
        `qweight[:, col] |= intweight[:, col·8 + order_map[i]] << (4i)`, the same for qzeros;
        awq/utils/packing_utils.py dequantize_gemm: (iweight − izeros)·scales)

Blocks: an .edge block of B inputs (B = 128, 64, 32 for 4 bits, the largest that fits; 32 for 8 bits) has one scale
and zero, so a weight is held exactly only if every aligned run of B inputs lies in one group: any group size that
is a multiple of B (g = 256 or a whole row store as int4_128, each block repeating its group's scale), and an
act-order g_idx only where it keeps B consecutive inputs together. Act-order (desc_act) g_idx that scatter groups
across the inputs are dequantized: permuting K to gather them would need the same permutation of every input
vector, which the previous layer (a norm, a residual) does not produce, so it would change the product.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .int_blocks import IntBlocks

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
PARTS = ("qweight", "qzeros", "scales", "g_idx")  # a packed linear's tensors (g_idx: GPTQ only)


@dataclass(frozen=True)
class QuantConfig:
    method: str          # "gptq" | "awq"
    bits: int
    group: int           # -1: one group per row
    desc_act: bool
    v1_zeros: bool       # GPTQ v1: stored zero points are zero − 1

    def describe(self) -> str:
        g = "per row" if self.group == -1 else f"group {self.group}"
        fmt = {True: " v1", False: " v2"}[self.v1_zeros] if self.method == "gptq" else ""
        return f"{self.method.upper()}{fmt} {self.bits}-bit {g}{' act-order' if self.desc_act else ''}"


def read_quant_config(folder: str, config: dict) -> QuantConfig | None:
    """The checkpoint's quantization, None for a float checkpoint; ValueError for one edgeconv cannot import."""
    qc = config.get("quantization_config")
    where = os.path.join(folder, "config.json") + ": quantization_config"
    if qc is None:
        path = os.path.join(folder, "quantize_config.json")  # AutoGPTQ's own file
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            qc = json.load(f)
        where = path
        if isinstance(qc, dict):
            qc.setdefault("quant_method", "gptq")
    if not isinstance(qc, dict):
        raise ValueError(f"{where} must be an object")
    method = str(qc.get("quant_method", "")).lower()
    bits = int(qc.get("bits", qc.get("w_bit", 4)))
    group = int(qc.get("group_size", qc.get("q_group_size", -1)))
    if group != -1 and group < 1:
        raise ValueError(f"{where}: group_size {group} is neither -1 nor positive")
    if method == "gptq":
        fmt = str(qc.get("checkpoint_format", qc.get("format", "gptq"))).lower()
        if fmt not in ("gptq", "gptq_v2"):
            raise ValueError(f"{where}: GPTQ checkpoint_format {fmt!r} is not supported (gptq, gptq_v2 are)")
        if bits not in (2, 4, 8):
            raise ValueError(f"{where}: GPTQ with {bits} bits is not supported (2, 4, 8 are)")
        return QuantConfig("gptq", bits, group, bool(qc.get("desc_act", False)), fmt == "gptq")
    if method == "awq":
        version = str(qc.get("version", "gemm")).lower()
        if version != "gemm":
            raise ValueError(f"{where}: AWQ version {version!r} is not supported (gemm is)")
        if bits != 4:
            raise ValueError(f"{where}: AWQ with {bits} bits is not supported (4 is)")
        if group == -1:
            raise ValueError(f"{where}: AWQ needs a group_size")
        return QuantConfig("awq", 4, group, False, False)
    raise ValueError(f"{where}: quant_method {method!r} is not supported (gptq and awq int checkpoints are; "
                     "convert others from their float weights)")


def _nibbles(words: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [..., word bits / bits] of each integer word's fields, lowest first."""
    width = words.dtype.itemsize * 8
    u = words.view(f"<u{words.dtype.itemsize}")
    shifts = np.arange(0, width, bits, dtype=u.dtype)
    return ((u[..., None] >> shifts) & u.dtype.type((1 << bits) - 1)).astype(np.uint8)


@dataclass
class PackedLinear(IntBlocks):
    """A GPTQ / AWQ linear as IntBlocks in .edge blocks of `block` inputs (fields of IntBlocks, and:)."""
    q: np.ndarray = None      # uint8 [N, K] codes
    reason: str | None = None  # why no block size fits the groups (then block = 1 and scales are per input)

    def codes(self) -> np.ndarray:
        return self.q.reshape(self.n, self.n_blocks, self.block)

    def why_inexact(self) -> str | None:
        if self.reason:
            self._exact = (None, None)
            return self.reason
        return super().why_inexact()


def _blocked(name: str, bits: int, q: np.ndarray, s: np.ndarray, z: np.ndarray, gk: np.ndarray,
             trivial: bool, group: int) -> PackedLinear:
    """q uint8 [N, K], s float [n_groups, N], z uint8 [n_groups, N], gk int [K] the group of each input."""
    n, k = q.shape
    for b in ((32,) if bits == 8 else (128, 64, 32)):
        if k % b == 0:
            runs = gk.reshape(-1, b)
            if np.all(runs == runs[:, :1]):
                first = runs[:, 0]
                return PackedLinear(name, n, k, bits, b, np.ascontiguousarray(s[first].T),
                                    np.ascontiguousarray(z[first].T), q=q)
    if not trivial:
        why = "act-order (desc_act): g_idx puts consecutive inputs in different groups, so no .edge block shares one scale"
    elif k % 32:
        why = f"K = {k} is not a multiple of 32"
    else:
        why = f"groups of {group} inputs (an .edge block of 32, 64 or 128 must lie in one group)"
    return PackedLinear(name, n, k, bits, 1, np.ascontiguousarray(s[gk].T), np.ascontiguousarray(z[gk].T),
                        q=q, reason=why)


def decode_gptq(name: str, cfg: QuantConfig, qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray,
                g_idx: np.ndarray | None) -> PackedLinear:
    """One GPTQ linear (layouts in the module docstring); ValueError on shapes that do not fit."""
    per = qweight.dtype.itemsize * 8 // cfg.bits
    k, n = qweight.shape[0] * per, qweight.shape[1]
    ng = scales.shape[0]
    zper = qzeros.dtype.itemsize * 8 // cfg.bits
    if scales.ndim != 2 or scales.shape[1] != n or qzeros.shape != (ng, n // zper) or n % zper:
        raise ValueError(f"{name}: GPTQ qweight {list(qweight.shape)}, qzeros {list(qzeros.shape)}, scales "
                         f"{list(scales.shape)} do not fit one linear of {k} inputs and {n} outputs")
    q = _nibbles(qweight, cfg.bits).transpose(0, 2, 1).reshape(k, n).T  # [N, K]: word r holds inputs r·per + j
    z = _nibbles(qzeros, cfg.bits).reshape(ng, n)                    # [groups, N]
    if cfg.v1_zeros:
        z = z + 1  # v1 stores zero − 1 (as the reference kernels add it back: a stored 15 is zero 16)
    group = k if cfg.group == -1 else cfg.group
    default = np.arange(k) // group
    gk = default if g_idx is None else g_idx.astype(np.int64).reshape(-1)
    if gk.shape != (k,) or gk.min() < 0 or gk.max() >= ng:
        raise ValueError(f"{name}: g_idx has {gk.size} entries in 0..{gk.max()}, expected {k} in 0..{ng - 1}")
    return _blocked(name, cfg.bits, np.ascontiguousarray(q), scales, z.astype(np.uint8), gk,
                    bool(np.array_equal(gk, default)), group)


def decode_awq(name: str, cfg: QuantConfig, qweight: np.ndarray, qzeros: np.ndarray,
               scales: np.ndarray) -> PackedLinear:
    """One AWQ GEMM linear (layouts in the module docstring); ValueError on shapes that do not fit."""
    if qweight.dtype != np.int32 or qzeros.dtype != np.int32:
        raise ValueError(f"{name}: AWQ qweight / qzeros are {qweight.dtype} / {qzeros.dtype}, expected int32")
    k, n = qweight.shape[0], qweight.shape[1] * 8
    ng = -(-k // cfg.group)
    if scales.shape != (ng, n) or qzeros.shape != (ng, n // 8):
        raise ValueError(f"{name}: AWQ qweight {list(qweight.shape)}, qzeros {list(qzeros.shape)}, scales "
                         f"{list(scales.shape)} do not fit one linear of {k} inputs, {n} outputs, group {cfg.group}")
    inv = np.argsort(AWQ_ORDER)  # field i holds output ORDER[i]: output j is field inv[j]

    def unpack(words):
        f = _nibbles(words, 4)                          # [rows, N/8, 8 fields]
        return f[..., inv].reshape(words.shape[0], n)   # [rows, N] in output order
    q = unpack(qweight).T                               # [N, K]
    z = unpack(qzeros)
    return _blocked(name, 4, np.ascontiguousarray(q), scales, z, np.arange(k) // cfg.group, True, cfg.group)
