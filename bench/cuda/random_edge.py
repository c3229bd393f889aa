"""Full-size .edge files with random weights, fast: for speed benchmarks on the GPU (bench/bench_cuda.py).

    write_random_edge(template, out, shape) -> {"path", "file_bytes", "bits_per_weight", "dtypes"}

`template` is a tiny .edge file of the same architecture and recipe (models.tiny + edgeconv export): its
metadata keys, metadata types, tensor names per layer, dtypes and expert blob layouts are kept; the shape
keys (`shape` below) replace the tiny ones and every tensor is re-declared at the full shape. The bytes are
random but valid: block dtypes get uniform random codes with one finite f16 scale per matrix chosen so that
a matmul of a unit-RMS input has outputs of RMS ~0.5 (so activations stay finite through the layers);
norms are 1; routers N(0, 1/D); expert blobs (planes4 / concat:<dtype>) random codes with the same
scales. For MoE routing like a trained model's (every expert used, not the same few for all tokens), codes
are zero-mean, embedding rows have unit norm, attention writes small (_out_rms), experts at output RMS 1
and output_norm is 4 (logits of std ~4). Otherwise the shared mean of raw codes and the attention output
(nearly the mean of the values in a random model) swamp the token, every token's residual is alike, decode
repeats one token, and the router sends every token to the same few experts: an expert cache then hits
100 % at any budget (bench/cuda/RESULTS.md, s21). Measured on a tiny 4b-like file (d 512, 8 layers, 32
experts, top-4, cache of 8 per layer): 28–32 experts per layer over 24 prompt tokens, greedy tokens vary,
hit rate ≈ 0.25 — uniform routing, the worst case for an expert cache. Nothing is quantized, so a 4B-parameter file takes seconds rather than the converter's minutes;
the numbers measured on it are speed, not quality.

shape keys: d_model, n_layers, n_heads, n_kv_heads, head_dim, d_ff, vocab, tied (bool), max_ctx,
rope_theta, and for MoE n_experts, n_used, d_expert. Per-layer dtypes are those of the template's layer 0
(the int4 recipe's first-layer choice for every layer).
"""
from __future__ import annotations

import math
import os
import re
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(REPO, "converter") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "converter"))

from edgeconv.format import META_TYPE_NAMES  # noqa: E402
from edgeconv.moe.blobs import blob_nbytes, concat_dtype, concat_offsets, planes4_sections  # noqa: E402
from edgeconv.quant import row_bytes  # noqa: E402
from edgeconv.reader import EdgeFile  # noqa: E402
from edgeconv.writer import EdgeWriter  # noqa: E402

_TYPE_ID = {v: k for k, v in META_TYPE_NAMES.items()}
# bytes of one block and where its f16 scale sits (int4a: d then m; both set, m = 0)
_BLOCK = {"int4_32": (18, 32), "int4_64": (34, 64), "int4_128": (66, 128), "q8_0": (34, 32),
          "int4a_32": (20, 32), "int4a_64": (36, 64), "int4a_128": (68, 128), "nl4_32": (18, 32)}


def _out_rms(base: str, L: int, D: int) -> float:
    """Output RMS for a unit-RMS input of a matrix (layer prefix stripped): the embedding's rows have unit norm;
    attention writes at ~0.7/√L of that (a random model's attention output is nearly the mean of the values,
    alike for every token: larger, it would swamp the token and route every token alike); the rest 0.5."""
    return {"tok_embd": 1.0, "attn_o": 0.7 / math.sqrt(L * D)}.get(base, 0.5)


# int8 codes (-128 made 0); nl4_32's table values (quant.h kNl4Values); int4 codes q - 8 in -7..7, 0 twice as likely: 4.18
_CODE_STD = {"q8_0": 73.9, "nl4_32": 67.4}


def _centre_nibbles(b: np.ndarray) -> np.ndarray:
    """Random int4 code bytes (two nibbles q, x = d·(q − 8)) made zero-mean in place: a nibble 0 (x = −8d) becomes
    8 (x = 0). Raw random codes have mean −0.5·d, the same sign in every row of every matrix, and that shared
    component grows through the layers until every token's residual is alike (one MoE routing for all)."""
    b |= ((b & 0x0F) == 0).astype(np.uint8) * 0x08
    b |= ((b & 0xF0) == 0).astype(np.uint8) * 0x80
    return b


def _scale_f16(dtype: str, cols: int, rms: float = 0.5) -> np.ndarray:
    std = _CODE_STD.get(dtype, 4.18)
    return np.array([rms / (std * math.sqrt(cols))], dtype=np.float16).view(np.uint8)


def random_matrix(rng: np.random.Generator, dtype: str, rows: int, cols: int, rms: float = 0.5) -> np.ndarray:
    """uint8 bytes of a rows x cols matrix of `dtype` (quant.h layout), random codes, finite scales: a unit-RMS
    input gives outputs of RMS ~`rms` (elements of std rms / √cols)."""
    if dtype in ("f32", "f16", "bf16"):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * (rms / math.sqrt(cols))
        if dtype == "f32":
            return x.view(np.uint8).ravel()
        if dtype == "f16":
            return x.astype(np.float16).view(np.uint8).ravel()
        return (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).ravel()
    if dtype not in _BLOCK:
        raise ValueError(f"random_matrix: no random generator for dtype {dtype}")
    bb, block = _BLOCK[dtype]
    nb = rows * (cols // block)
    b = np.frombuffer(rng.bytes(nb * bb), dtype=np.uint8).reshape(nb, bb).copy()
    if dtype == "q8_0":
        b[b == 0x80] = 0  # int8 −128 -> 0: zero-mean codes
    elif dtype == "nl4_32":
        sign = b[:, 1] & 0x80  # the table's mean is −5.9: a random sign per block scale makes the values zero-mean
    else:
        _centre_nibbles(b[:, 4 if dtype.startswith("int4a") else 2:])
    s = _scale_f16(dtype, cols, rms)
    b[:, 0:2] = s
    if dtype == "nl4_32":
        b[:, 1] |= sign
    if dtype.startswith("int4a"):
        b[:, 2:4] = 0
    return b.ravel()


def random_blob(rng: np.random.Generator, layout: str, D: int, F: int) -> np.ndarray:
    """One expert blob (gate [F, D], up [F, D], down [D, F]) in `layout` (docs/MOE.md §3), each matrix at output
    RMS 1: the experts' outputs, a per-token function of the token, carry the residual (and the routing)."""
    size = blob_nbytes(layout, D, F)
    out = np.zeros(size, dtype=np.uint8)
    dt = concat_dtype(layout)
    if dt is not None:
        offs, _ = concat_offsets(dt, D, F)
        for off, (r, c) in zip(offs, ((F, D), (F, D), (D, F))):
            m = random_matrix(rng, dt, r, c, 1.0)
            out[off:off + m.size] = m
        return out
    nb, a, b = planes4_sections(D, F)
    s = _scale_f16("int4_32", D, 1.0)
    out[:2 * nb] = np.tile(s, nb)
    hi = np.frombuffer(rng.bytes(8 * nb), dtype=np.uint8).copy()
    lo = np.frombuffer(rng.bytes(8 * nb), dtype=np.uint8)
    for f in range(4):  # q = 4·hi + lo = 0 (x = −8d) -> hi = 2 (q = 8, x = 0): zero-mean codes, as _centre_nibbles
        zero = (((hi >> 2 * f) & 3) == 0) & (((lo >> 2 * f) & 3) == 0)
        hi |= zero.astype(np.uint8) << (2 * f + 1)
    out[a:a + 8 * nb] = hi
    out[a + b:a + b + 8 * nb] = lo
    return out


def _shape_of(name: str, s: dict) -> tuple[int, ...]:
    D, Dh = s["d_model"], s["head_dim"]
    q, kv = s["n_heads"] * Dh, s["n_kv_heads"] * Dh
    base = re.sub(r"^blk\.\d+\.", "", name)
    table = {"tok_embd": (s["vocab"], D), "output": (s["vocab"], D), "output_norm": (D,),
             "attn_norm": (D,), "ffn_norm": (D,), "attn_q": (q, D), "attn_k": (kv, D), "attn_v": (kv, D),
             "attn_o": (D, q), "ffn_gate": (s.get("d_ff", 0), D), "ffn_up": (s.get("d_ff", 0), D),
             "ffn_down": (D, s.get("d_ff", 0)), "ffn_router": (s.get("n_experts", 0), D),
             "attn_q_norm": (Dh,), "attn_k_norm": (Dh,), "attn_q_bias": (q,), "attn_k_bias": (kv,),
             "attn_v_bias": (kv,)}
    if base not in table:
        raise ValueError(f"random_edge: no shape rule for tensor {name}")
    return table[base]


def write_random_edge(template: str, out: str, shape: dict, seed: int = 0) -> dict:
    t = EdgeFile(template)
    meta = dict(t.metadata)
    L, V, D = shape["n_layers"], shape["vocab"], shape["d_model"]
    moe = "moe.n_experts" in meta
    upd = {"llm.n_layers": L, "llm.d_model": D, "llm.n_heads": shape["n_heads"], "llm.n_kv_heads": shape["n_kv_heads"],
           "llm.head_dim": shape["head_dim"], "llm.d_ff": shape.get("d_ff", 0), "llm.vocab_size": V,
           "llm.max_ctx": shape.get("max_ctx", 2048), "llm.rope_theta": float(shape.get("rope_theta", 1e4)),
           "llm.tied_head": int(shape.get("tied", False)), "general.name": shape.get("name", "random")}
    if moe:
        E = shape["n_experts"]
        upd.update({"moe.n_experts": E, "moe.n_experts_used": shape["n_used"], "moe.d_expert": shape["d_expert"],
                    "moe.layers": np.ones(L, dtype=np.int64),
                    "moe.plan": np.zeros(L * E, dtype=np.asarray(meta["moe.plan"]).dtype)})
    for key in ("llm.rope_layers", "llm.swa_layers"):  # every layer RoPE, none sliding (the 4B preset)
        if key in meta:
            upd[key] = np.full(L, 1 if key == "llm.rope_layers" else 0, dtype=np.asarray(meta[key]).dtype)
    toks = list(meta.get("tokenizer.tokens", []))
    if toks and len(toks) < V:  # as edgeconv pads a vocabulary: unused [PAD<i>] tokens of type 5
        upd["tokenizer.tokens"] = toks + [f"[PAD{i}]" for i in range(len(toks), V)]
        tt = np.asarray(meta["tokenizer.token_type"])
        upd["tokenizer.token_type"] = np.concatenate([tt, np.full(V - len(toks), 5, dtype=tt.dtype)])
    meta.update(upd)

    # tensor list: top-level ones as in the template, layer 0's names for every layer, blobs per expert
    names = list(t.tensors.keys()) if isinstance(t.tensors, dict) else [x.name for x in t.tensors]
    info = {n: t.tensor(n) for n in names}
    layer0 = [n for n in names if n.startswith("blk.0.") and ".exp." not in n]
    blobs0 = sorted({n.split(".", 4)[4] for n in names if n.startswith("blk.0.exp.")})
    plan: list[tuple[str, str, tuple]] = []
    for n in names:
        if n.startswith("blk."):
            continue
        if n == "output" and shape.get("tied"):
            continue
        plan.append((n, info[n].dtype, _shape_of(n, shape)))
        if n == "tok_embd":
            for i in range(L):
                plan += [(f"blk.{i}." + x[6:], info[x].dtype, _shape_of(x, shape)) for x in layer0]
    if moe:
        layouts = dict(zip(meta["moe.variant_blob"], meta["moe.variant_layout"]))
        for i in range(L):
            for e in range(shape["n_experts"]):
                for b in blobs0:
                    plan.append((f"blk.{i}.exp.{e}.{b}", "blob",
                                 (blob_nbytes(layouts[b], D, shape["d_expert"]),)))
    rng = np.random.default_rng(seed)
    with EdgeWriter(out) as w:
        for k, v in meta.items():
            if k == "quant.bits_per_weight":
                continue
            w.add_metadata(k, v, _TYPE_ID[t.meta_types[k]])
        for n, dt, shp in plan:
            w.declare(n, dt, shp, n_weights=(3 * D * shape["d_expert"] if n.endswith(blobs0[0]) else 0)
                      if dt == "blob" else None)
        w.begin()
        for n, dt, shp in plan:
            base = re.sub(r"^blk\.\d+\.", "", n)
            if dt == "blob":
                b = n.split(".", 4)[4]
                data = random_blob(rng, layouts[b], D, shape["d_expert"])
            elif base.endswith("norm"):
                data = np.full(shp, 4.0 if base == "output_norm" else 1.0, dtype=np.float32).view(np.uint8).ravel()
            elif base.endswith("bias"):
                data = np.zeros(shp, dtype=np.float32).view(np.uint8).ravel()
            else:
                data = random_matrix(rng, dt, shp[0], shp[1], _out_rms(base, L, D))
            w.write_tensor(n, data)
        size, bpw = w.file_size, w.bits_per_weight
    return {"path": out, "file_bytes": os.path.getsize(out), "bits_per_weight": bpw,
            "dtypes": sorted({dt for _, dt, _ in plan})}


def weight_bytes_per_token(path: str) -> dict:
    """Bytes of weights one decode token reads: every matrix of the layers and the head (tok_embd when tied;
    the embedding row lookup is not counted), and for MoE k experts per layer of the first variant's view."""
    f = EdgeFile(path)
    m = f.metadata
    names = list(f.tensors.keys()) if isinstance(f.tensors, dict) else [x.name for x in f.tensors]
    dense = 0
    for n in names:
        ti = f.tensor(n)
        if ti.dtype == "blob" or len(ti.shape) != 2 or n == "tok_embd":
            continue
        dense += ti.nbytes
    if m.get("llm.tied_head"):
        dense += f.tensor("tok_embd").nbytes
    experts = 0
    if "moe.n_experts" in m:
        D, F, k = m["llm.d_model"], m["moe.d_expert"], m["moe.n_experts_used"]
        lay = m["moe.variant_layout"][0]
        dt = concat_dtype(lay)
        one = (sum(r * row_bytes(dt, c) for r, c in ((F, D), (F, D), (D, F))) if dt is not None
               else 3 * D * F // 32 * 18)
        experts = int(np.sum(m["moe.layers"])) * k * one
    return {"dense": int(dense), "experts": int(experts), "total": int(dense + experts)}
