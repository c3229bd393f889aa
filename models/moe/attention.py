"""Grouped-query attention with the per-layer options of MoE models (docs/MOE.md §2): RoPE or NoPE
(`llm.rope_layers`), full causal or sliding-window (`llm.swa_layers`, `llm.swa_window`), and q/k
RMSNorm per head or over the whole projection (`llm.qk_norm_scope`).

    attention(h (T, C), w, layer, shape, cos, sin, start_pos, cache) -> (T, C)

Notation as in models/llama.py: H = n_heads, KV = n_kv_heads, D = head_dim; query t sits at absolute
position p = start_pos + t.
    q = h attn_q^T (+ bias), k, v likewise                        q (T, H*D), k/v (T, KV*D)
    qk_norm, scope full: q = rmsnorm(q) * attn_q_norm over all H*D, k over all KV*D (OLMoE), then split
    qk_norm, scope head: split into heads, then rmsnorm over each head's D with one [D] weight (Qwen3)
    RoPE layer: rotate-half RoPE of q and k at their absolute positions; NoPE layer: no rotation
    (k, v) appended to the cache (post-RoPE keys)
    key p' is visible to query p iff p' <= p and, on a sliding-window layer, p' > p - W
    a = softmax(q k^T / sqrt(D) + mask) v, query head h reading kv head h // (H / KV);  out = a attn_o^T
The cache keeps every position (nothing is evicted); the window is a mask, so a runtime that drops keys
older than W on sliding-window layers computes the same thing.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..llama import KVCache, rmsnorm, rope

__all__ = ["attention"]


def attention(h: torch.Tensor, w: Callable[[str], torch.Tensor], layer: int, shape, cos: torch.Tensor,
              sin: torch.Tensor, start_pos: int, cache: KVCache | None) -> torch.Tensor:
    """h is the normalised layer input (T, C); w(name) returns a tensor by our name; shape is a MoeShape;
    cos, sin (T, D) for positions start_pos..start_pos+T-1. Appends k, v to the cache. Returns (T, C)."""
    s, p = shape.llm, f"blk.{layer}."
    T = h.shape[0]
    q, k, v = h @ w(p + "attn_q").T, h @ w(p + "attn_k").T, h @ w(p + "attn_v").T
    if s.qkv_bias:
        q, k, v = q + w(p + "attn_q_bias"), k + w(p + "attn_k_bias"), v + w(p + "attn_v_bias")
    if s.qk_norm and shape.qk_norm_scope == "full":
        q = rmsnorm(q, w(p + "attn_q_norm"), s.rms_eps)
        k = rmsnorm(k, w(p + "attn_k_norm"), s.rms_eps)
    q = q.view(T, s.n_heads, s.head_dim)
    k = k.view(T, s.n_kv_heads, s.head_dim)
    v = v.view(T, s.n_kv_heads, s.head_dim)
    if s.qk_norm and shape.qk_norm_scope == "head":
        q = rmsnorm(q, w(p + "attn_q_norm"), s.rms_eps)
        k = rmsnorm(k, w(p + "attn_k_norm"), s.rms_eps)
    if shape.rope_layers[layer]:
        q, k = rope(q, cos, sin), rope(k, cos, sin)
    k, v = k.transpose(0, 1), v.transpose(0, 1)                                     # (KV, T, D)
    if cache is not None:
        if len(cache.k) > layer:
            cache.k[layer] = torch.cat([cache.k[layer], k], dim=1)
            cache.v[layer] = torch.cat([cache.v[layer], v], dim=1)
        else:
            cache.k.append(k)
            cache.v.append(v)
        k, v = cache.k[layer], cache.v[layer]                                       # (KV, Tc, D)
    Tc = k.shape[1]
    group = s.n_heads // s.n_kv_heads
    k = k.repeat_interleave(group, dim=0)                                           # (H, Tc, D)
    v = v.repeat_interleave(group, dim=0)
    scores = q.transpose(0, 1) @ k.transpose(1, 2) / math.sqrt(s.head_dim)         # (H, T, Tc)
    key_pos = torch.arange(Tc)[None, :]
    query_pos = (start_pos + torch.arange(T))[:, None]
    visible = key_pos <= query_pos                                                  # (T, Tc)
    if shape.swa_layers[layer]:
        visible &= key_pos > query_pos - shape.swa_window
    scores = scores.masked_fill(~visible, float("-inf"))
    a = torch.softmax(scores, dim=-1) @ v                                           # (H, T, D)
    a = a.transpose(0, 1).reshape(T, s.n_heads * s.head_dim)
    return a @ w(p + "attn_o").T
