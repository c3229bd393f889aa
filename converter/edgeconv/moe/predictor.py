"""The pre-attention expert predictor of `moe.predictor = linear` (docs/MOE.md §3), and its recall.

Predicted logits of MoE layer i for a token whose layer input (the residual before attention) is x:
    u = x / sqrt(mean(x²) + rms_eps)               (T, D)  RMS-normalised, no weight
    p = u W_predᵀ + b                               (T, E)
fold(W_router [E, D], ffn_norm [D]) -> (W_router · diag(ffn_norm), 0): the router applied as if attention
    added nothing (the router reads rmsnorm(x + attn) · ffn_norm); needs no data.
fit_lsq(u (N, D), logits (N, E), ridge) -> (W [E, D], b [E]): ridge-regularised least squares on the true
    router logits, min ‖u Wᵀ + b − logits‖² + λ‖W‖², λ = ridge · N · mean(diag(uᵀu / N)) (b is not
    penalised); solved in float64 from the normal equations.
recall(pred (N, E), true (N, E), k) -> the share of the true top-k experts (ties: lower index first, as
    the router) that are in the predicted top-k, over all N·k (token, expert) pairs.
"""
from __future__ import annotations

import numpy as np

RIDGE = 1e-2


def rms_normalise(x: np.ndarray, eps: float) -> np.ndarray:
    """x (T, D) -> x / sqrt(mean(x²) + eps), float32 (the runtime's u)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps))


def fold(router: np.ndarray, ffn_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The data-free predictor: (W_router · diag(ffn_norm) float32 [E, D], zeros [E])."""
    w = np.asarray(router, np.float32) * np.asarray(ffn_norm, np.float32)[None, :]
    return w.astype(np.float32), np.zeros(w.shape[0], np.float32)


def fit_lsq(u: np.ndarray, logits: np.ndarray, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares of logits (N, E) on [u, 1] (N, D+1) -> (W float32 [E, D], b float32 [E])."""
    u = np.asarray(u, np.float64)
    y = np.asarray(logits, np.float64)
    n, d = u.shape
    if n < 2:
        raise ValueError(f"the predictor fit needs at least 2 tokens, got {n}")
    x = np.concatenate([u, np.ones((n, 1))], axis=1)
    a = x.T @ x
    lam = ridge * np.trace(a[:d, :d]) / d
    a[np.arange(d), np.arange(d)] += lam
    beta = np.linalg.solve(a, x.T @ y)  # (D+1, E)
    return beta[:d].T.astype(np.float32), beta[d].astype(np.float32)


def predict(u: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(u, np.float32) @ np.asarray(w, np.float32).T + np.asarray(b, np.float32)


def topk(logits: np.ndarray, k: int) -> np.ndarray:
    """(N, E) -> (N, k): the k largest per row, equal values in increasing index order."""
    return np.argsort(-np.asarray(logits), axis=-1, kind="stable")[:, :k]


def recall_counts(pred: np.ndarray, true: np.ndarray, k: int) -> tuple[int, int]:
    """(true top-k experts found in the predicted top-k, N·k)."""
    p, t = topk(pred, k), topk(true, k)
    hit = (t[:, :, None] == p[:, None, :]).any(-1)
    return int(hit.sum()), int(hit.size)


def recall(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    h, n = recall_counts(pred, true, k)
    return h / n if n else float("nan")
