"""Per-expert precision from measured sensitivity (`--expert-bits AVG`, EdgeMoE-style): moe.plan.

sensitivity(h (n, D), w (n,), views, act) -> [s_0 = 0, s_1, ...]: for the n calibration tokens routed to
    one expert (h = its input, the ffn-normed post-attention state; w = the token's routing weight of
    this expert), s_v = Σ_t w_t² ‖E_v(h_t) − E_0(h_t)‖², the squared error variant v adds to the layer
    output relative to the best stored variant 0. Summing over routed tokens weighs frequent experts up.
plan_bits(sens (M, E, V), bits (V,), avg) -> variant index per (MoE layer, expert): start with every
    expert at variant 0 and repeatedly move the one expert whose next lower variant costs the least added
    sensitivity per bit saved, until the mean bits per weight over all experts is <= avg. Experts never
    routed on the calibration text have sensitivity 0 and go down first; among equals, lower (layer,
    expert) first. `bits` are the views' stored bits per weight (blobs.view_bits: planes4 4.5,
    planes4_msb 2.5, concat:q8_0 8.5), so avg is a bits-per-expert-weight budget on what is read.
"""
from __future__ import annotations

import heapq

import numpy as np


def expert_out(h: np.ndarray, gate: np.ndarray, up: np.ndarray, down: np.ndarray, act: str) -> np.ndarray:
    """(act(h gateᵀ) · (h upᵀ)) downᵀ in float32, (n, D)."""
    g = h @ gate.T
    g = g / (1 + np.exp(-g)) if act == "silu" else np.maximum(g, 0)
    return (g * (h @ up.T)) @ down.T


def sensitivity(h: np.ndarray, w: np.ndarray, views: list[list[np.ndarray]], act: str) -> list[float]:
    """See the module docstring. views[v] = [gate, up, down] float32 of variant v (views[0] the best)."""
    if len(h) == 0:
        return [0.0] * len(views)
    h = np.asarray(h, np.float32)
    w2 = np.asarray(w, np.float64) ** 2
    with np.errstate(over="ignore", invalid="ignore"):
        ref = expert_out(h, *views[0], act).astype(np.float64)
        out = [0.0]
        for v in views[1:]:
            d = expert_out(h, *v, act).astype(np.float64) - ref
            out.append(float(np.sum(w2 * np.sum(d * d, axis=1))))
    return out


def plan_bits(sens: np.ndarray, bits: list[float], avg: float) -> np.ndarray:
    """sens (M, E, V) with sens[..., 0] = 0; bits (V,) decreasing -> int64 (M, E) variant indices."""
    sens = np.asarray(sens, np.float64)
    m, e, nv = sens.shape
    if nv != len(bits) or any(b1 >= b0 for b0, b1 in zip(bits, bits[1:])):
        raise ValueError(f"expert variants must be listed best first with decreasing bits, got {bits}")
    if not bits[-1] <= avg:
        raise ValueError(f"--expert-bits {avg}: below the smallest variant ({bits[-1]:.3g} bits per weight)")
    plan = np.zeros((m, e), np.int64)
    total, n = bits[0] * m * e, m * e
    heap = []

    def push(i: int, j: int) -> None:
        v = plan[i, j]
        if v + 1 < nv:
            cost = max(sens[i, j, v + 1] - sens[i, j, v], 0.0) / (bits[v] - bits[v + 1])
            heapq.heappush(heap, (cost, i, j))

    for i in range(m):
        for j in range(e):
            push(i, j)
    while total / n > avg + 1e-12 and heap:
        _, i, j = heapq.heappop(heap)
        v = plan[i, j]
        total -= bits[v] - bits[v + 1]
        plan[i, j] = v + 1
        push(i, j)
    return plan
