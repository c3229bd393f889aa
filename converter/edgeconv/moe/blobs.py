"""Expert blobs (docs/MOE.md §3): the bytes of one (layer, expert) stored as one `blob` tensor, and the
views (variants) the runtime reads from them. Byte-exact encoders and decoders, numpy only.

An expert is gate [F, D], up [F, D], down [D, F] (D = d_model, F = d_expert; rows of 32-weight blocks).

  concat:<dtype>  gate rows, up rows, down rows in <dtype>'s row layout (FORMAT.md), each matrix starting
                  at a multiple of 64 bytes from the blob start; the blob is zero padded to 4096.
  planes4         the three matrices as int4_32 (x = d·(q − 8)), nb blocks in row-major order gate, up,
                  down, split into sections, each zero padded to a multiple of 4096:
                    A: nb little-endian f16 scales d
                    B: nb × 8 bytes of hi = q >> 2     byte k of a block: elements k, k+8, k+16, k+24 in
                    C: nb × 8 bytes of lo = q & 3      bits 0-1, 2-3, 4-5, 6-7
                  view planes4     = A+B+C: q = 4·hi + lo (exactly the int4_32 codes)
                  view planes4_msb = A+B (a prefix): q = 4·hi + 2
The planes4 encoder takes int4_32 rows (quant.quantize(w, "int4_32") or GPTQ's), so the nested int4
view is bit for bit the ordinary int4_32 quantization; the decoders repack a view into int4_32 rows as
the runtime does, and `expert_weights` dequantizes them with quant.dequantize (the C++ reference's
arithmetic), so Python decoding gives exactly the weights the runtime computes with.
"""
from __future__ import annotations

import numpy as np

from ..quant import DTYPES, dequantize, row_bytes

PAGE = 4096
MATRIX_ALIGN = 64
BLOCK = 32
INT4_BLOCK_BYTES = 18            # int4_32: f16 d + 16 bytes of nibbles
LAYOUTS = ("planes4", "planes4_msb")  # plus "concat:<dtype>"


def pad(n: int, a: int = PAGE) -> int:
    return (n + a - 1) // a * a


def expert_shapes(d_model: int, d_expert: int) -> tuple[tuple[int, int], ...]:
    """(gate, up, down) shapes, ours: [F, D], [F, D], [D, F]."""
    return (d_expert, d_model), (d_expert, d_model), (d_model, d_expert)


def n_blocks(d_model: int, d_expert: int) -> int:
    """32-weight blocks of one expert (all three matrices); ValueError unless D and F are multiples of 32."""
    if d_model % BLOCK or d_expert % BLOCK:
        raise ValueError(f"planes4 needs d_model ({d_model}) and d_expert ({d_expert}) to be multiples of {BLOCK}")
    return 3 * d_model * d_expert // BLOCK


def concat_dtype(layout: str) -> str | None:
    """"concat:q8_0" -> "q8_0"; None for the planes layouts; ValueError for anything else."""
    if layout in LAYOUTS:
        return None
    kind, sep, dt = layout.partition(":")
    if kind != "concat" or not sep or dt not in DTYPES or dt in ("blob", "i32"):
        raise ValueError(f"unknown expert layout {layout!r}; known: planes4, planes4_msb, concat:<dtype>")
    return dt


def concat_offsets(dtype: str, d_model: int, d_expert: int) -> tuple[list[int], int]:
    """Byte offsets of gate, up, down in a concat:<dtype> blob, and the blob size (a multiple of 4096)."""
    offs, pos = [], 0
    for rows, cols in expert_shapes(d_model, d_expert):
        rb = row_bytes(dtype, cols)
        if rb == 0:
            raise ValueError(f"concat:{dtype}: an expert row of {cols} weights is not a multiple of the {dtype} "
                             f"block ({DTYPES[dtype].block})")
        pos = pad(pos, MATRIX_ALIGN)
        offs.append(pos)
        pos += rows * rb
    return offs, pad(pos)


def planes4_sections(d_model: int, d_expert: int) -> tuple[int, int, int]:
    """(nb, bytes of section A padded, bytes of section B (= C) padded)."""
    nb = n_blocks(d_model, d_expert)
    return nb, pad(2 * nb), pad(8 * nb)


def blob_nbytes(layout: str, d_model: int, d_expert: int) -> int:
    """Bytes of the blob a layout reads from (planes4_msb reads a prefix of the planes4 blob: see view_nbytes)."""
    dt = concat_dtype(layout)
    if dt is not None:
        return concat_offsets(dt, d_model, d_expert)[1]
    _, a, b = planes4_sections(d_model, d_expert)
    return a + 2 * b


def view_nbytes(layout: str, d_model: int, d_expert: int) -> int:
    """Bytes the runtime reads for one expert in this view (a prefix of the blob for planes4_msb)."""
    if layout == "planes4_msb":
        _, a, b = planes4_sections(d_model, d_expert)
        return a + b
    return blob_nbytes(layout, d_model, d_expert)


def view_bits(layout: str, d_model: int, d_expert: int) -> float:
    """Stored bits per weight of a view, without page padding: planes4 4.5, planes4_msb 2.5, concat:q8_0 8.5."""
    n = 3 * d_model * d_expert
    dt = concat_dtype(layout)
    if dt is not None:
        return 8.0 * sum(r * row_bytes(dt, c) for r, c in expert_shapes(d_model, d_expert)) / n
    nb = n_blocks(d_model, d_expert)
    return 8.0 * (2 * nb + (16 if layout == "planes4" else 8) * nb) / n


# ---- concat ----------------------------------------------------------------------------------------------

def encode_concat(rows: tuple[np.ndarray, np.ndarray, np.ndarray], dtype: str, d_model: int,
                  d_expert: int) -> np.ndarray:
    """Stored rows of gate, up, down in `dtype` (uint8 [rows, row_bytes]) -> the blob, uint8 [nbytes]."""
    offs, size = concat_offsets(dtype, d_model, d_expert)
    out = np.zeros(size, np.uint8)
    for r, off, (nr, nc) in zip(rows, offs, expert_shapes(d_model, d_expert)):
        r = np.ascontiguousarray(r, dtype=np.uint8).reshape(-1)
        if r.size != nr * row_bytes(dtype, nc):
            raise ValueError(f"concat:{dtype}: a [{nr}, {nc}] matrix has {nr * row_bytes(dtype, nc)} bytes, got {r.size}")
        out[off:off + r.size] = r
    return out


def decode_concat(blob: np.ndarray, dtype: str, d_model: int, d_expert: int) -> list[np.ndarray]:
    """The blob -> stored rows of gate, up, down (uint8 [rows, row_bytes], views of `blob`)."""
    offs, size = concat_offsets(dtype, d_model, d_expert)
    b = _bytes(blob, size)
    return [b[off:off + nr * row_bytes(dtype, nc)].reshape(nr, row_bytes(dtype, nc))
            for off, (nr, nc) in zip(offs, expert_shapes(d_model, d_expert))]


# ---- planes4 ---------------------------------------------------------------------------------------------

def _int4_blocks(rows: tuple[np.ndarray, np.ndarray, np.ndarray], d_model: int, d_expert: int) -> np.ndarray:
    parts = []
    for r, (nr, nc) in zip(rows, expert_shapes(d_model, d_expert)):
        r = np.asarray(r, dtype=np.uint8)
        if r.size != nr * nc // BLOCK * INT4_BLOCK_BYTES:
            raise ValueError(f"planes4: a [{nr}, {nc}] int4_32 matrix has {nr * nc // BLOCK * INT4_BLOCK_BYTES} "
                             f"bytes, got {r.size}")
        parts.append(r.reshape(-1, INT4_BLOCK_BYTES))
    return np.concatenate(parts)  # [nb, 18], blocks in row-major order gate, up, down


def _pack_planes(p: np.ndarray) -> np.ndarray:
    """2-bit values [nb, 32] -> [nb, 8]: byte k = p[k] | p[k+8] << 2 | p[k+16] << 4 | p[k+24] << 6."""
    g = p.reshape(-1, 4, 8)
    return (g[:, 0] | (g[:, 1] << 2) | (g[:, 2] << 4) | (g[:, 3] << 6)).astype(np.uint8)


def _unpack_planes(b: np.ndarray) -> np.ndarray:
    """Inverse of _pack_planes: [nb, 8] -> [nb, 32]."""
    return np.stack([(b >> s) & 3 for s in (0, 2, 4, 6)], axis=1).reshape(-1, 32)


def encode_planes4(rows: tuple[np.ndarray, np.ndarray, np.ndarray], d_model: int, d_expert: int) -> np.ndarray:
    """int4_32 rows of gate, up, down (uint8 [rows, cols/32·18]) -> the planes4 blob, uint8 [nbytes]."""
    nb, a, b = planes4_sections(d_model, d_expert)
    blk = _int4_blocks(rows, d_model, d_expert)
    nib = blk[:, 2:]
    q = np.concatenate([nib & 15, nib >> 4], axis=1)  # int4_32 split-half nibbles -> codes [nb, 32]
    out = np.zeros(a + 2 * b, np.uint8)
    out[:2 * nb] = blk[:, :2].reshape(-1)
    out[a:a + 8 * nb] = _pack_planes(q >> 2).reshape(-1)
    out[a + b:a + b + 8 * nb] = _pack_planes(q & 3).reshape(-1)
    return out


def decode_planes4(blob: np.ndarray, d_model: int, d_expert: int, msb: bool = False) -> list[np.ndarray]:
    """A planes4 blob (or, with msb, at least its A+B prefix) -> int4_32 rows of gate, up, down
    (uint8 [rows, cols/32·18]): q = 4·hi + lo, or 4·hi + 2 for the planes4_msb view."""
    nb, a, b = planes4_sections(d_model, d_expert)
    buf = _bytes(blob, a + b if msb else a + 2 * b)
    hi = _unpack_planes(buf[a:a + 8 * nb].reshape(nb, 8))
    lo = 2 if msb else _unpack_planes(buf[a + b:a + b + 8 * nb].reshape(nb, 8))
    q = (hi << 2) | lo
    blk = np.empty((nb, INT4_BLOCK_BYTES), np.uint8)
    blk[:, :2] = buf[:2 * nb].reshape(nb, 2)
    blk[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    out, pos = [], 0
    for nr, nc in expert_shapes(d_model, d_expert):
        n = nr * nc // BLOCK
        out.append(blk[pos:pos + n].reshape(nr, nc // BLOCK * INT4_BLOCK_BYTES))
        pos += n
    return out


# ---- any view --------------------------------------------------------------------------------------------

def encode_blob(layout: str, rows: tuple[np.ndarray, np.ndarray, np.ndarray], d_model: int,
                d_expert: int) -> np.ndarray:
    """Stored rows (int4_32 for planes4, <dtype> for concat:<dtype>) -> blob bytes."""
    dt = concat_dtype(layout)
    if layout == "planes4_msb":
        raise ValueError("planes4_msb is a view of a planes4 blob; encode planes4")
    return encode_planes4(rows, d_model, d_expert) if dt is None else encode_concat(rows, dt, d_model, d_expert)


def view_rows(blob: np.ndarray, layout: str, d_model: int, d_expert: int) -> tuple[str, list[np.ndarray]]:
    """(row dtype, [gate, up, down] stored rows) the runtime computes with for this view of a blob."""
    dt = concat_dtype(layout)
    if dt is not None:
        return dt, decode_concat(blob, dt, d_model, d_expert)
    return "int4_32", decode_planes4(blob, d_model, d_expert, msb=layout == "planes4_msb")


def expert_weights(blob: np.ndarray, layout: str, d_model: int, d_expert: int) -> list[np.ndarray]:
    """float32 [gate [F, D], up [F, D], down [D, F]] of a view of a blob, dequantized as the C++ kernels do."""
    dt, rows = view_rows(blob, layout, d_model, d_expert)
    return [dequantize(r, dt, shape) for r, shape in zip(rows, expert_shapes(d_model, d_expert))]


def _bytes(blob, need: int) -> np.ndarray:
    b = np.frombuffer(blob, np.uint8) if isinstance(blob, (bytes, bytearray, memoryview)) else np.asarray(blob)
    if b.dtype != np.uint8 or b.ndim != 1:
        raise ValueError(f"an expert blob is uint8 [nbytes], got {b.dtype} {b.shape}")
    if b.size < need:
        raise ValueError(f"expert blob has {b.size} bytes, the view needs {need}")
    return b
