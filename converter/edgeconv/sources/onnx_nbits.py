"""com.microsoft MatMulNBits weights: decode, and map onto an .edge block dtype where one holds them exactly.

MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?), attributes K, N, bits, block_size: the weight is
[N, K] (output rows, our layout: no transpose) in blocks of `block_size` along K:
  B            uint8 [N, n_blocks, block_size·bits/8]; 4 bits: byte j = element 2j (low nibble) | 2j+1 (high)
  scales       [N·n_blocks] (or [N, n_blocks]) of the activation type (f32 or f16)
  zero_points  uint8 [N·ceil(n_blocks·bits/8)], packed like B (block 2b low nibble, 2b+1 high), or absent:
               2^(bits-1) (8 for 4 bits). Float zero points and g_idx (act-order) are refused.
  w[n, k] = (q[n, k] - zp[n, k / block_size]) · scale[n, k / block_size]          (n_blocks = ceil(K / block))

Exact .edge forms (csrc/kernels/ref/dequant_ref.cpp), chosen per tensor, all blocks or none:
  int4_B   bits 4, B = block_size in {32, 64, 128}, every zp = 8, every scale on the f16 grid:
           d = scale, code = q (d·(q − 8)); the nibbles re-ordered to split-half order (byte j = elements j, j + B/2)
  int4a_B  bits 4, same B, every scale on the f16 grid and every m = −scale·zp on the f16 grid too:
           d·q + m. Exact because d·q and m are exact f32 values and their exact sum scale·(q − zp) has at most
           11 + 4 significant bits, so the one f32 add that dequant_int4a does cannot round.
  q8_0     bits 8, block 32, every zp = 128, scales on the f16 grid: d = scale, code = q − 128
Anything else (f32 scales off the f16 grid, other block sizes, zero points whose m is off the grid, K not a
multiple of the block) has no exact form: the exporter dequantizes it and re-quantizes with the recipe, and
says so (OnnxNBits.why_inexact).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT_BLOCKS = (32, 64, 128)


@dataclass
class OnnxNBits:
    """One MatMulNBits weight, decoded from its constants."""
    name: str            # node label (messages)
    n: int
    k: int
    bits: int
    block: int
    b: np.ndarray        # uint8 [N, n_blocks, blob]
    scales: np.ndarray   # float [N, n_blocks] (as stored: f32 or f16)
    zp: np.ndarray       # uint8 [N, n_blocks] (unpacked; the default when the graph has none)

    def __post_init__(self) -> None:
        self._exact: tuple = (None, None)  # (dtype, int4a offsets m) once why_inexact() has run

    @property
    def n_blocks(self) -> int:
        return self.b.shape[1]

    def codes(self) -> np.ndarray:
        """uint8 [N, n_blocks, block] of the stored integers."""
        if self.bits == 4:
            lo, hi = self.b & 15, self.b >> 4
            return np.stack([lo, hi], axis=-1).reshape(self.n, self.n_blocks, self.block)
        if self.bits == 8:
            return self.b.reshape(self.n, self.n_blocks, self.block)
        bits = np.unpackbits(self.b[..., None], axis=-1, bitorder="little").reshape(self.n, self.n_blocks, -1)
        weights = (1 << np.arange(self.bits)).astype(np.uint8)
        return (bits.reshape(self.n, self.n_blocks, self.block, self.bits) * weights).sum(-1).astype(np.uint8)

    def dequantize(self) -> np.ndarray:
        """float32 [N, K]: (q − zp) · scale, computed in f32."""
        q = self.codes().astype(np.float32) - self.zp.astype(np.float32)[..., None]
        w = q * self.scales.astype(np.float32)[..., None]
        return np.ascontiguousarray(w.reshape(self.n, -1)[:, :self.k])

    def _scales_f16(self) -> np.ndarray | None:
        s = self.scales.astype(np.float32)
        s16 = s.astype(np.float16)
        if not np.isfinite(s).all() or not np.array_equal(s16.astype(np.float32), s):
            return None
        return s16

    def exact_dtype(self) -> str | None:
        """The .edge dtype holding this weight exactly, or None (why_inexact says why)."""
        return None if self.why_inexact() else self._exact[0]

    def why_inexact(self) -> str | None:
        self._exact = (None, None)
        if self.bits == 8:
            if self.block != 32:
                return f"8-bit blocks of {self.block} (q8_0 has 32)"
        elif self.bits != 4:
            return f"{self.bits}-bit codes"
        elif self.block not in EXACT_BLOCKS:
            return f"blocks of {self.block} (int4 blocks are 32, 64 or 128)"
        if self.k % self.block:
            return f"K = {self.k} is not a multiple of the block ({self.block})"
        s16 = self._scales_f16()
        if s16 is None:
            return f"{self.scales.dtype} scales that are not on the f16 grid"
        mid = 1 << (self.bits - 1)
        if np.all(self.zp == mid):
            self._exact = ("q8_0" if self.bits == 8 else f"int4_{self.block}", None)
            return None
        if self.bits == 8:
            return "zero points other than 128"
        m = -(s16.astype(np.float64) * self.zp.astype(np.float64))
        m16 = m.astype(np.float16)
        if not np.isfinite(m16).all() or not np.array_equal(m16.astype(np.float64), m):
            return "zero points whose offset −scale·zp is not on the f16 grid (int4a stores m = −scale·zp in f16)"
        self._exact = (f"int4a_{self.block}", m16)
        return None

    def stored(self) -> np.ndarray:
        """uint8 [N, K / B · block bytes]: the exact .edge blocks (exact_dtype must not be None)."""
        dt = self.exact_dtype()
        assert dt is not None, self.name
        d = self._scales_f16()
        dbytes = np.ascontiguousarray(d.astype("<f2")).view(np.uint8).reshape(self.n, self.n_blocks, 2)
        q = self.codes()
        if dt == "q8_0":
            body = (q.astype(np.int16) - 128).astype(np.int8).view(np.uint8)
            return np.concatenate([dbytes, body], axis=-1).reshape(self.n, -1)
        h = self.block // 2
        packed = (q[..., :h] | (q[..., h:] << 4)).astype(np.uint8)
        parts = [dbytes]
        if dt.startswith("int4a"):
            m16 = self._exact[1]
            parts.append(np.ascontiguousarray(m16.astype("<f2")).view(np.uint8).reshape(self.n, self.n_blocks, 2))
        parts.append(packed)
        return np.concatenate(parts, axis=-1).reshape(self.n, -1)


def read_nbits(g, node, where: str) -> OnnxNBits:
    """Decode a MatMulNBits node's weight constants (OnnxGraphError-style ValueError on anything off)."""
    a = g.attrs(node)
    label = f"{where}: MatMulNBits node {node.name or node.output[0]!r}"
    try:
        k, n, bits, block = int(a["K"]), int(a["N"]), int(a.get("bits", 4)), int(a["block_size"])
    except KeyError as e:
        raise ValueError(f"{label} lacks attribute {e.args[0]!r}") from None
    if not 2 <= bits <= 8 or block < 16 or block & (block - 1) or k < 1 or n < 1:
        raise ValueError(f"{label}: bits {bits}, block_size {block}, K {k}, N {n} are not a valid MatMulNBits")
    ins = list(node.input) + [""] * (6 - len(node.input))
    if ins[4]:
        raise ValueError(f"{label} has g_idx (act-order), which edgerun does not import")
    for i in (1, 2):
        if not g.is_const(ins[i]):
            raise ValueError(f"{label}: input {i} is computed, not a constant weight")
    nb = -(-k // block)
    blob = block * bits // 8
    b = g.const(ins[1])
    if b.dtype != np.uint8 or b.size != n * nb * blob:
        raise ValueError(f"{label}: B is {b.dtype} {list(b.shape)}, expected uint8 [{n}, {nb}, {blob}]")
    scales = g.const(ins[2])
    if scales.size != n * nb or scales.dtype not in (np.float32, np.float16):
        raise ValueError(f"{label}: scales are {scales.dtype} {list(scales.shape)}, expected f32/f16 [{n * nb}]")
    if ins[3]:
        zraw = g.const(ins[3])
        if zraw is None or zraw.dtype != np.uint8:
            raise ValueError(f"{label}: zero points must be a uint8 constant (float zero points are not supported)")
        per_row = -(-nb * bits // 8)
        if zraw.size != n * per_row:
            raise ValueError(f"{label}: zero points have {zraw.size} bytes, expected {n * per_row}")
        zbits = np.unpackbits(zraw.reshape(n, per_row, 1), axis=-1, bitorder="little").reshape(n, -1)
        zbits = zbits[:, :nb * bits].reshape(n, nb, bits)
        zp = (zbits * (1 << np.arange(bits))).sum(-1).astype(np.uint8)
    else:
        zp = np.full((n, nb), 1 << (bits - 1), np.uint8)
    return OnnxNBits(node.name or node.output[0], n, k, bits, block, b.reshape(n, nb, blob),
                     scales.reshape(n, nb), zp)
