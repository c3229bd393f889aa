"""Routing and the expert FFN of a mixture-of-experts layer: the numerical spec (docs/MOE.md §1).

Notation: T tokens, C = d_model, E experts, k = experts used per token, F = d_expert.

    route(logits (T, E), k, gating, norm_topk) -> idx (T, k) long, w (T, k)
        idx[t] = the k largest logits of token t, largest first; ties: lower expert index first
                 (selection always on the raw logits, whatever the gating)
        softmax: w[t, j] = exp(l[idx] - max l) / sum over ALL E experts of exp(l_e - max l)
        sigmoid: w[t, j] = 1 / (1 + exp(-l[idx]))
        norm_topk: w[t, :] /= sum_j w[t, j]
    expert(h (T, C), gate (F, C), up (F, C), down (C, F), act) = (act(h gate^T) * (h up^T)) down^T   (T, C)
        act = silu (SwiGLU) or relu (ReGLU)
    moe_ffn(h, idx, w, experts, act)[t] = sum_{j<k} w[t, j] * expert_{idx[t, j]}(h[t])
    predictor_logits(x (T, C), W (E, C), b (E,), eps) = (x / sqrt(mean(x^2) + eps)) W^T + b     (T, E)
        (moe.predictor = linear: the layer input x, RMS-normalised without a weight)

Everything is computed in the dtype of the inputs (float32 for the spec; float64 for a tighter oracle).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["route", "expert", "moe_ffn", "predictor_logits", "topk_lower_index_first"]


def topk_lower_index_first(logits: torch.Tensor, k: int) -> torch.Tensor:
    """logits (T, E) -> (T, k) long: the k largest per row, largest first, equal values in increasing
    index order (a stable descending sort keeps the original order of equal keys). torch.topk makes no
    promise about ties, so it is not used."""
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices[:, :k]


def route(logits: torch.Tensor, k: int, gating: str, norm_topk: bool):
    """logits (T, E) -> (idx (T, k) long, w (T, k) in logits.dtype). See the module docstring."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be (T, E), got {tuple(logits.shape)}")
    idx = topk_lower_index_first(logits, k)
    if gating == "softmax":
        w = torch.softmax(logits, dim=-1).gather(1, idx)
    elif gating == "sigmoid":
        w = torch.sigmoid(logits.gather(1, idx))
    else:
        raise ValueError(f"gating must be 'softmax' or 'sigmoid', got {gating!r}")
    if norm_topk:
        w = w / w.sum(dim=-1, keepdim=True)
    return idx, w


_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": torch.nn.functional.silu, "relu": torch.relu}


def expert(h: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, act: str) -> torch.Tensor:
    """h (T, C); gate, up (F, C); down (C, F) -> (act(h gate^T) * (h up^T)) down^T, (T, C)."""
    return (_ACTS[act](h @ gate.T) * (h @ up.T)) @ down.T


def moe_ffn(h: torch.Tensor, idx: torch.Tensor, w: torch.Tensor,
            experts: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]], act: str) -> torch.Tensor:
    """h (T, C), idx/w (T, k); experts(e) -> (gate, up, down) of expert e. Returns (T, C).

    Each expert is fetched once and run on the tokens that chose it; the k weighted outputs of a token
    are then summed in slot order j = 0..k-1 (largest logit first)."""
    T, k = idx.shape
    parts = torch.zeros(T, k, h.shape[1], dtype=h.dtype)
    for e in torch.unique(idx).tolist():
        t, j = torch.nonzero(idx == e, as_tuple=True)
        parts[t, j] = w[t, j, None] * expert(h[t], *experts(e), act)
    out = parts[:, 0]
    for j in range(1, k):
        out = out + parts[:, j]
    return out


def predictor_logits(x: torch.Tensor, w_pred: torch.Tensor, b_pred: torch.Tensor, eps: float) -> torch.Tensor:
    """x (T, C) layer input; w_pred (E, C); b_pred (E,) -> (T, E) = rmsnorm_noweight(x) W^T + b."""
    u = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return u @ w_pred.T + b_pred
