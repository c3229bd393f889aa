"""com.microsoft MatMulNBits weights: decode, and map onto an .edge block dtype where one holds them exactly.

MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?), attributes K, N, bits, block_size: the weight is
[N, K] (output rows, our layout: no transpose) in blocks of `block_size` along K:
  B            uint8 [N, n_blocks, block_size·bits/8]; 4 bits: byte j = element 2j (low nibble) | 2j+1 (high)
  scales       [N·n_blocks] (or [N, n_blocks]) of the activation type (f32 or f16)
  zero_points  uint8 [N·ceil(n_blocks·bits/8)], packed like B (block 2b low nibble, 2b+1 high), or absent:
               2^(bits-1) (8 for 4 bits). Float zero points and g_idx (act-order) are refused.
  w[n, k] = (q[n, k] - zp[n, k / block_size]) · scale[n, k / block_size]          (n_blocks = ceil(K / block))

Which .edge dtype holds such a weight exactly (int4_B / int4a_B / q8_0), and anything else being dequantized
and re-quantized with the recipe (with a note): int_blocks.py, shared with the HF GPTQ / AWQ importer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .int_blocks import IntBlocks


@dataclass
class OnnxNBits(IntBlocks):
    """One MatMulNBits weight, decoded from its constants (fields of IntBlocks, and the packed codes b)."""
    b: np.ndarray = None  # uint8 [N, n_blocks, blob]

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
    return OnnxNBits(node.name or node.output[0], n, k, bits, block, scales.reshape(n, nb), zp,
                     b=b.reshape(n, nb, blob))
