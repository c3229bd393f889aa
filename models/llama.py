"""Reference decoder for the Llama family (Llama, SmolLM2, TinyLlama), Qwen2 and Qwen3.

This file is the numerical spec the C++ runtime is tested against: plain PyTorch, one function per
step, no Hugging Face dependency. It reads the `llm.*` keys and tensor names of docs/FORMAT.md.

Notation (llm.c style): T tokens, C = d_model, H = n_heads, KV = n_kv_heads, D = head_dim,
F = d_ff, V = vocab_size. Weights are [out, in] (nn.Linear order); `x @ W.T`.

    tok_embd            (V, C)          x = tok_embd[tokens]                        x is (T, C)
    per block i:
      attn_norm         (C,)            h = rmsnorm(x) * attn_norm
      attn_q            (H*D, C)        q = h @ attn_q.T (+ attn_q_bias)            q is (T, H, D)
      attn_k, attn_v    (KV*D, C)       k, v likewise (+ biases when llm.qkv_bias)  k, v are (T, KV, D)
      attn_q_norm/k_norm (D,)           when llm.qk_norm: q = rmsnorm_D(q) * attn_q_norm, same for k
                                        rope(q), rope(k) at absolute positions start_pos..start_pos+T-1
                                        (k, v) appended to the cache: (KV, Tc, D) with Tc = start_pos+T
                                        query head h reads kv head h // (H / KV)  (grouped-query)
                                        a = softmax(q k^T / sqrt(D) + causal) v     a is (T, H*D)
      attn_o            (C, H*D)        x = x + a @ attn_o.T
      ffn_norm          (C,)            h = rmsnorm(x) * ffn_norm
      ffn_gate, ffn_up  (F, C)          g = silu(h @ ffn_gate.T) * (h @ ffn_up.T)   g is (T, F)
      ffn_down          (C, F)          x = x + g @ ffn_down.T
    output_norm         (C,)            h = rmsnorm(x) * output_norm
    output              (V, C)          logits = h @ output.T  (tok_embd when llm.tied_head) (T, V)

rmsnorm(x) = x / sqrt(mean(x^2) + rms_eps) over the last dimension.

Optional layout keys (Gemma 3 uses all of them; absent = the Llama layout above):
    llm.embed_scale     x = tok_embd[tokens] * embed_scale (Gemma: sqrt(d_model))
    llm.ffn_act         "silu" (SwiGLU) or "gelu_tanh" (GeGLU: 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))))
    llm.post_norms      1: the attention and FFN outputs are normalised before the residual add:
                        x = x + rmsnorm(a) * attn_post_norm;  x = x + rmsnorm(f) * ffn_post_norm
    llm.swa_layers      per-layer 0/1: block i attends only to keys p' > p - llm.swa_window
    llm.rope_theta_swa  the RoPE base of the sliding-window blocks (default llm.rope_theta)
RoPE is the rotate-half convention of Hugging Face: for i < D/2 the pair (i, i + D/2) is rotated by
angle pos * rope_theta^(-2i/D):  out_i = x_i cos - x_{i+D/2} sin,  out_{i+D/2} = x_{i+D/2} cos + x_i sin.

Everything is computed in `dtype` (float32 by default, float64 for a tighter oracle), including the
softmax, the norms and the RoPE angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

__all__ = ["Reference", "KVCache", "ModelShape", "gqa_attend", "check_tokens", "LAYOUT_DEFAULTS"]

# The layout keys (docs/FORMAT.md) and the one value of each this reference implements; absent = that value.
LAYOUT_DEFAULTS: dict[str, str] = {"llm.norm": "rms", "llm.ffn_act": "silu", "llm.rope_type": "rotate_half"}
# Other values a layout key may take here (docs/FORMAT.md).
LAYOUT_ALSO: dict[str, tuple[str, ...]] = {"llm.ffn_act": ("gelu_tanh",)}


@dataclass(frozen=True)
class ModelShape:
    """The `llm.*` hyper-parameters the forward pass needs (docs/FORMAT.md, "Keys for a decoder-only LLM")."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab_size: int
    rope_theta: float
    rms_eps: float
    qkv_bias: bool = False
    qk_norm: bool = False
    tied_head: bool = False
    ffn_act: str = "silu"
    post_norms: bool = False
    embed_scale: float = 1.0
    swa_layers: tuple[int, ...] = ()      # empty: no sliding-window block
    swa_window: int = 0
    rope_theta_swa: float = 0.0           # 0: rope_theta

    @staticmethod
    def from_config(config: Mapping[str, object]) -> "ModelShape":
        """Reads `llm.<name>` keys; the three flags default to 0 when absent. The layout keys (LAYOUT_DEFAULTS)
        must be absent or their one implemented value (ValueError naming the key otherwise). Unrelated keys
        are ignored."""

        def get(name: str, default=None):
            key = "llm." + name
            if key in config:
                return config[key]
            if default is None:
                raise KeyError(f"model config lacks '{key}' (see docs/FORMAT.md for the llm.* keys)")
            return default

        shape = ModelShape(
            n_layers=int(get("n_layers")), d_model=int(get("d_model")), n_heads=int(get("n_heads")),
            n_kv_heads=int(get("n_kv_heads")), head_dim=int(get("head_dim")), d_ff=int(get("d_ff")),
            vocab_size=int(get("vocab_size")), rope_theta=float(get("rope_theta")),
            rms_eps=float(get("rms_eps")), qkv_bias=bool(int(get("qkv_bias", 0))),
            qk_norm=bool(int(get("qk_norm", 0))), tied_head=bool(int(get("tied_head", 0))),
            ffn_act=str(config.get("llm.ffn_act", "silu")), post_norms=bool(int(get("post_norms", 0))),
            embed_scale=float(get("embed_scale", 1.0)),
            swa_layers=tuple(int(v) for v in config.get("llm.swa_layers", ())),
            swa_window=int(config.get("llm.swa_window", 0)), rope_theta_swa=float(get("rope_theta_swa", 0.0)))
        for key, default in LAYOUT_DEFAULTS.items():
            if key in config and config[key] != default and config[key] not in LAYOUT_ALSO.get(key, ()):
                raise ValueError(f"{key} = {config[key]!r} is not implemented by this reference (only {default!r}; "
                                 f"docs/FORMAT.md)")
        if shape.n_heads % shape.n_kv_heads != 0:
            raise ValueError(f"n_heads={shape.n_heads} is not a multiple of n_kv_heads={shape.n_kv_heads}")
        if shape.head_dim % 2 != 0:
            raise ValueError(f"head_dim={shape.head_dim} must be even for RoPE")
        if shape.swa_layers and (len(shape.swa_layers) != shape.n_layers or
                                 (any(shape.swa_layers) and shape.swa_window < 1)):
            raise ValueError(f"llm.swa_layers needs {shape.n_layers} entries and llm.swa_window >= 1")
        return shape

    def window(self, i: int) -> int | None:
        """The sliding window of block i (None: full causal)."""
        return self.swa_window if self.swa_layers and self.swa_layers[i] else None

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor name this model needs, with its shape ([out, in] for matrices)."""
        C, H, KV, D, F, V = (self.d_model, self.n_heads, self.n_kv_heads, self.head_dim, self.d_ff,
                             self.vocab_size)
        shapes: dict[str, tuple[int, ...]] = {"tok_embd": (V, C), "output_norm": (C,)}
        if not self.tied_head:
            shapes["output"] = (V, C)
        for i in range(self.n_layers):
            p = f"blk.{i}."
            shapes.update({p + "attn_norm": (C,), p + "attn_q": (H * D, C), p + "attn_k": (KV * D, C),
                           p + "attn_v": (KV * D, C), p + "attn_o": (C, H * D), p + "ffn_norm": (C,),
                           p + "ffn_gate": (F, C), p + "ffn_up": (F, C), p + "ffn_down": (C, F)})
            if self.qkv_bias:
                shapes.update({p + "attn_q_bias": (H * D,), p + "attn_k_bias": (KV * D,),
                               p + "attn_v_bias": (KV * D,)})
            if self.qk_norm:
                shapes.update({p + "attn_q_norm": (D,), p + "attn_k_norm": (D,)})
            if self.post_norms:
                shapes.update({p + "attn_post_norm": (C,), p + "ffn_post_norm": (C,)})
        return shapes


@dataclass
class KVCache:
    """Post-RoPE keys and values per layer: k[i], v[i] are (KV, n, D); n = tokens seen so far."""

    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)
    n: int = 0


def rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """x is (..., N), w is (N,): x / sqrt(mean(x^2) + eps) * w over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """positions is (T,) int. Returns cos, sin, each (T, D) with columns i and i + D/2 equal."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=dtype) / head_dim))   # (D/2,)
    angles = positions.to(dtype)[:, None] * inv_freq[None, :]                            # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)                                         # (T, D)
    return angles.cos(), angles.sin()


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x is (T, heads, D); cos, sin are (T, D). Rotate-half RoPE (pairs i, i + D/2)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def check_tokens(tokens, vocab_size: int, start_pos: int, cache: KVCache | None) -> torch.Tensor:
    """tokens as a 1-D long tensor; ValueError if empty, out of [0, vocab_size), or if start_pos does not
    continue the cache (no cache: start_pos must be 0)."""
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if tokens.numel() == 0:
        raise ValueError("tokens is empty")
    if int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size:
        raise ValueError(f"token id out of range [0, {vocab_size})")
    if cache is None and start_pos != 0:
        raise ValueError("start_pos > 0 needs the cache holding positions 0..start_pos-1")
    if cache is not None and cache.n != start_pos:
        raise ValueError(f"start_pos={start_pos} but the cache holds {cache.n} positions")
    return tokens


def gqa_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache | None, layer: int,
               start_pos: int, window: int | None = None) -> torch.Tensor:
    """Causal grouped-query attention of q (T, H, D) over k, v (T, KV, D) (both after RoPE), appending k, v
    to `cache` for `layer` first. Query t sits at absolute position p = start_pos + t and sees keys p' <= p
    (and p' > p - window on a sliding-window layer); query head h reads kv head h // (H / KV).
    Returns softmax(q k^T / sqrt(D) + mask) v as (T, H*D)."""
    T, H, D = q.shape
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
    group = H // k.shape[0]
    k = k.repeat_interleave(group, dim=0)                                           # (H, Tc, D)
    v = v.repeat_interleave(group, dim=0)
    scores = q.transpose(0, 1) @ k.transpose(1, 2) / math.sqrt(D)                  # (H, T, Tc)
    key_pos = torch.arange(Tc)[None, :]
    query_pos = (start_pos + torch.arange(T))[:, None]
    visible = key_pos <= query_pos                                                  # (T, Tc)
    if window is not None:
        visible &= key_pos > query_pos - window
    scores = scores.masked_fill(~visible, float("-inf"))
    a = torch.softmax(scores, dim=-1) @ v                                           # (H, T, D)
    return a.transpose(0, 1).reshape(T, H * D)


class Reference:
    """The reference decoder. `config` holds `llm.*` keys; `weights` maps our tensor names to arrays.

    Weights may be numpy arrays or torch tensors of any float dtype; they are copied (never aliased)
    to `dtype`.
    A missing tensor, a wrong shape or an unexpected extra tensor raises ValueError/KeyError.
    """

    def __init__(self, config: Mapping[str, object], weights: Mapping[str, object],
                 dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.shape = ModelShape.from_config(config)
        self.dtype = dtype
        expected = self.shape.tensor_shapes()
        extra = sorted(set(weights) - set(expected))
        if extra:
            raise ValueError(f"weights hold tensors this config does not use: {extra[:8]} "
                             f"(check llm.qkv_bias / llm.qk_norm / llm.tied_head)")
        self.w: dict[str, torch.Tensor] = {}
        for name, want in expected.items():
            if name not in weights:
                raise KeyError(f"weights lack tensor '{name}' of shape {want}")
            t = weights[name]
            # Always a private copy: the source may be a view of a memory map that is closed later.
            if isinstance(t, torch.Tensor):
                t = t.detach().to(dtype=dtype, copy=True).contiguous()
            else:
                t = torch.from_numpy(np.array(t, dtype=np.float64 if dtype == torch.float64 else np.float32))
            if tuple(t.shape) != want:
                raise ValueError(f"tensor '{name}' has shape {tuple(t.shape)}, expected {want}")
            self.w[name] = t

    def new_cache(self) -> KVCache:
        return KVCache()

    @torch.no_grad()
    def logits(self, tokens, start_pos: int = 0, cache: KVCache | None = None,
               trace: dict | None = None) -> torch.Tensor:
        """tokens is (T,) int. Returns logits (T, V) for positions start_pos..start_pos+T-1.

        Without a cache, start_pos must be 0 (a full causal forward). With a cache, start_pos must equal
        cache.n; the T new keys/values are appended, so prefill-then-decode is
        `c = m.new_cache(); m.logits(prompt, 0, c); m.logits([t], len(prompt), c)`.
        When `trace` is a dict it receives intermediate activations, each (T, ...):
        `blk.{i}.attn_out` (attention sublayer output after attn_o), `blk.{i}.ffn_out`,
        `blk.{i}.out` (residual stream after block i) and `output_norm`.
        """
        s = self.shape
        tokens = check_tokens(tokens, s.vocab_size, start_pos, cache)
        T = tokens.numel()

        positions = torch.arange(start_pos, start_pos + T)
        rope_full = rope_cos_sin(positions, s.head_dim, s.rope_theta, self.dtype)
        rope_swa = rope_cos_sin(positions, s.head_dim, s.rope_theta_swa, self.dtype) if s.rope_theta_swa else rope_full
        x = self.w["tok_embd"][tokens]                                                  # (T, C)
        if s.embed_scale != 1.0:
            x = x * s.embed_scale
        for i in range(s.n_layers):
            cos, sin = rope_swa if s.window(i) else rope_full
            a = self._attention(i, rmsnorm(x, self.w[f"blk.{i}.attn_norm"], s.rms_eps), cos, sin,
                                start_pos, cache)
            if s.post_norms:
                a = rmsnorm(a, self.w[f"blk.{i}.attn_post_norm"], s.rms_eps)
            x = x + a
            f = self._ffn(i, rmsnorm(x, self.w[f"blk.{i}.ffn_norm"], s.rms_eps))
            if s.post_norms:
                f = rmsnorm(f, self.w[f"blk.{i}.ffn_post_norm"], s.rms_eps)
            x = x + f
            if trace is not None:
                trace[f"blk.{i}.attn_out"], trace[f"blk.{i}.ffn_out"], trace[f"blk.{i}.out"] = a, f, x
        if cache is not None:
            cache.n += T
        h = rmsnorm(x, self.w["output_norm"], s.rms_eps)
        if trace is not None:
            trace["output_norm"] = h
        head = self.w["tok_embd"] if s.tied_head else self.w["output"]
        return h @ head.T                                                               # (T, V)

    def _attention(self, i: int, h: torch.Tensor, cos, sin, start_pos: int, cache: KVCache | None):
        """h is (T, C). Returns the attention sublayer output (T, C); appends k, v to the cache."""
        s, w, p = self.shape, self.w, f"blk.{i}."
        T = h.shape[0]
        q, k, v = h @ w[p + "attn_q"].T, h @ w[p + "attn_k"].T, h @ w[p + "attn_v"].T
        if s.qkv_bias:
            q, k, v = q + w[p + "attn_q_bias"], k + w[p + "attn_k_bias"], v + w[p + "attn_v_bias"]
        q = q.view(T, s.n_heads, s.head_dim)
        k = k.view(T, s.n_kv_heads, s.head_dim)
        v = v.view(T, s.n_kv_heads, s.head_dim)
        if s.qk_norm:
            q = rmsnorm(q, w[p + "attn_q_norm"], s.rms_eps)
            k = rmsnorm(k, w[p + "attn_k_norm"], s.rms_eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = gqa_attend(q, k, v, cache, i, start_pos, s.window(i))
        return a @ w[p + "attn_o"].T

    def _ffn(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """h is (T, C). SwiGLU (act(h Wg^T) * h Wu^T) Wd^T, (T, C); act = silu or tanh-GELU (llm.ffn_act)."""
        w, p = self.w, f"blk.{i}."
        g = h @ w[p + "ffn_gate"].T
        g = (torch.nn.functional.silu(g) if self.shape.ffn_act == "silu"
             else torch.nn.functional.gelu(g, approximate="tanh"))
        g = g * (h @ w[p + "ffn_up"].T)
        return g @ w[p + "ffn_down"].T

    def step(self, token: int, pos: int, cache: KVCache) -> torch.Tensor:
        """One decode step: logits (V,) for `token` at position `pos` (== cache.n)."""
        return self.logits(torch.tensor([int(token)]), pos, cache)[0]

    def greedy(self, tokens, n: int, eos_id: int | None = None) -> list[int]:
        """Prefill `tokens`, then take the argmax n times (stopping after eos_id if given).

        Returns only the generated ids. Ties go to the lowest id (torch.argmax)."""
        tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
        cache = self.new_cache()
        out: list[int] = []
        if n <= 0:
            return out
        last = self.logits(tokens, 0, cache)[-1]
        while True:
            nxt = int(torch.argmax(last))
            out.append(nxt)
            if len(out) == n or nxt == eos_id:
                return out
            last = self.step(nxt, cache.n, cache)
