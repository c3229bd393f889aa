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

from typing import Callable

import torch

from ..llama import KVCache, gqa_attend, rmsnorm, rope

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
    window = shape.swa_window if shape.swa_layers[layer] else None
    a = gqa_attend(q, k, v, cache, layer, start_pos, window)
    return a @ w(p + "attn_o").T
