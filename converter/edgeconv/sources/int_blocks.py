"""Integer weights in blocks along K, w = (q − zp) · scale: which .edge dtype holds them exactly, and its bytes.

Shared by every importer of already-quantized integer weights (ONNX MatMulNBits: onnx_nbits.py; Hugging Face
GPTQ / AWQ: hf_quant.py). A subclass decodes its source's packing into codes(); this class decides and encodes.

  weight  [N, K] (output rows, our layout), blocks of `block` consecutive inputs along K
  codes() uint8 [N, n_blocks, block]   the stored integers, 0 .. 2^bits − 1
  scales  float [N, n_blocks]          (as stored: f32 or f16)
  zp      uint8 [N, n_blocks]          zero points (0 .. 2^bits; GPTQ v1 can decode to 16)
  w[n, k] = (q[n, k] − zp[n, k / block]) · scale[n, k / block], computed in f32: exact, since an f16 scale times
  an integer of at most 5 bits has at most 11 + 5 significant bits

Exact .edge forms (csrc/kernels/ref/dequant_ref.cpp), chosen per tensor, all blocks or none:
  int4_B   bits 4, B = block in {32, 64, 128}, every zp = 8, every scale on the f16 grid:
           d = scale, code = q (d·(q − 8)); the nibbles re-ordered to split-half order (byte j = elements j, j + B/2)
  int4a_B  bits 4, same B, every scale on the f16 grid and every m = −scale·zp on the f16 grid too:
           d·q + m. Exact because d·q and m are exact f32 values and their exact sum scale·(q − zp) has at most
           11 + 5 significant bits, so the one f32 add that dequant_int4a does cannot round.
  q8_0     bits 8, block 32, every zp = 128, scales on the f16 grid: d = scale, code = q − 128
Anything else (scales off the f16 grid, other block sizes, zero points whose m is off the grid, K not a multiple
of the block) has no exact form: the exporter dequantizes it and re-quantizes with the recipe, and says so
(why_inexact gives the one-line reason).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT_BLOCKS = (32, 64, 128)


@dataclass
class IntBlocks:
    """One integer-quantized weight; subclasses supply codes()."""
    name: str            # source label (messages)
    n: int
    k: int
    bits: int
    block: int
    scales: np.ndarray   # float [N, n_blocks] (as stored: f32 or f16)
    zp: np.ndarray       # uint8 [N, n_blocks]

    def __post_init__(self) -> None:
        self._exact: tuple = (None, None)  # (dtype, int4a offsets m) once why_inexact() has run

    @property
    def n_blocks(self) -> int:
        return self.scales.shape[1]

    def codes(self) -> np.ndarray:
        """uint8 [N, n_blocks, block] of the stored integers."""
        raise NotImplementedError

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
