"""An independent float64 forward pass of a llama-family GGUF: the exact value both engines approximate.

    forward(weights, ids, act="none") -> logits [T, vocab] (float64)

weights = load(path): every tensor dequantized by the `gguf` package (the stored values, float64), in GGUF's row
order, so RoPE is llama.cpp's interleaved form (pairs 2i, 2i+1); no KV cache, causal softmax attention in float64.
Shapes from the file's llama.* keys; RoPE scaling, biases and q/k norms are not handled (SmolLM2 has none).

act emulates the rounding of every matmul input of an int-dot engine (x: [T, n], per 32 values, f32):
  "none"  exact
  "q8x"   edgerun's block_q8x (csrc/quant.h): d = amax/127, q = rne(x·(1/d)), d and s kept in f32
  "q8_1"  ggml's x86 quantize_row_q8_1 / q8_0: id = 127/amax, q = rne(x·id), d rounded to f16
perturb (relative, e.g. 6e-8 = half an f32 ulp) multiplies every matmul input by 1 + perturb·N(0, 1) first: a
draw of rounding noise below f32 resolution, to measure how far such noise alone moves the logits.
"""
from __future__ import annotations

import numpy as np


def load(path: str) -> dict:
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(path)
    w: dict = {}
    for t in r.tensors:
        shape = [int(s) for s in reversed(t.shape.tolist())]
        w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    for key in ("block_count", "attention.head_count", "attention.head_count_kv", "rope.freq_base",
                "attention.layer_norm_rms_epsilon"):
        f = r.fields.get(f"{arch}.{key}")
        if f is not None:
            w["hp." + key] = float(f.parts[-1][0])
    return w


def round_act(x: np.ndarray, act: str) -> np.ndarray:
    """The dequantized activations an int-dot matmul sees (see the module doc)."""
    if act == "none":
        return x
    b = x.astype(np.float32).reshape(x.shape[0], -1, 32)
    amax = np.abs(b).max(axis=2, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        if act == "q8x":
            inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
        elif act == "q8_1":
            inv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
            d = d.astype(np.float16).astype(np.float32)
        else:
            raise ValueError(f"act must be none, q8x or q8_1, got {act!r}")
    q = np.clip(np.rint((b * inv).astype(np.float32)), -127, 127)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(x.shape)


def forward(w: dict, ids: list[int], act: str = "none", perturb: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    nl, nh, nkv = int(w["hp.block_count"]), int(w["hp.attention.head_count"]), int(w["hp.attention.head_count_kv"])
    theta, eps = w.get("hp.rope.freq_base", 10000.0), w["hp.attention.layer_norm_rms_epsilon"]
    emb = w["token_embd.weight"]
    head = w.get("output.weight", emb)
    t_len, dh = len(ids), emb.shape[1] // nh

    def mm(x, name_or_w):
        m = w[name_or_w] if isinstance(name_or_w, str) else name_or_w
        if perturb:
            x = x * (1 + perturb * rng.standard_normal(x.shape))
        return round_act(x, act) @ m.T

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    ang = np.arange(t_len)[:, None] * theta ** (-np.arange(0, dh, 2) / dh)[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(v):  # [T, H, dh], interleaved pairs
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    mask = np.triu(np.full((t_len, t_len), -np.inf), 1)
    x = emb[ids].copy()
    for layer in range(nl):
        p = f"blk.{layer}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = rope(mm(h, p + "attn_q.weight").reshape(t_len, nh, dh))
        k = rope(mm(h, p + "attn_k.weight").reshape(t_len, nkv, dh))
        v = mm(h, p + "attn_v.weight").reshape(t_len, nkv, dh)
        o = np.empty((t_len, nh, dh))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            s = q[:, hh] @ k[:, kv].T / np.sqrt(dh) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            o[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + mm(o.reshape(t_len, -1), p + "attn_output.weight")
        h = rms(x, w[p + "ffn_norm.weight"])
        g, u = mm(h, p + "ffn_gate.weight"), mm(h, p + "ffn_up.weight")
        x = x + mm(g / (1 + np.exp(-g)) * u, p + "ffn_down.weight")
    return mm(rms(x, w["output_norm.weight"]), head)
