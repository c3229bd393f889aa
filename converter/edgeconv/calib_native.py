"""Calibration statistics from edgerun's own C++ forward pass (no torch): what calib.py computes with the
PyTorch reference, collected by `_core.Model.calib_begin / calib_end` (csrc/act_stats.h).

    collect_native(edge_path, plan, tokens, ctx=512, max_tokens=8192, hessians=False, threads=0)
        -> (importance {tensor name: float32 [cols]}, H {tensor name: float32 [cols, cols]} or None)

edge_path is a float (f16 / f32) .edge copy of the model being converted; the tokens are run through it in
chunks of `ctx` (the KV cache is reset between chunks, as calib.py does), all rows through the head.
importance[name][j] = mean over tokens of x_j², H = XᵀX / N for the input x each matmul reads:
    attn_q/k/v  <- site attn_in     attn_o <- attn_out     ffn_gate/up <- ffn_in     ffn_down <- ffn_mid
    head (tok_embd when the head is tied) <- head_in
Tensors that read one input share one H array (the exporter caches GPTQ's factor by id). sumsq is summed
in float64 in C++, XᵀX in float32 (act_stats.h); H stays float32 here (SmolLM2-135M: ≈ 0.4 GB), GPTQ
converts the one it factors to float64. Experts of MoE models are not mapped here (export.py keeps the
reference path for them).
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

__all__ = ["SITE_OF_ROLE", "BUILTIN", "builtin_text", "docs_text", "default_text", "collect_native"]

SITE_OF_ROLE = {"attn_q": "attn_in", "attn_k": "attn_in", "attn_v": "attn_in", "attn_o": "attn_out",
                "ffn_gate": "ffn_in", "ffn_up": "ffn_in", "ffn_down": "ffn_mid"}
BUILTIN = "builtin"  # --calib builtin: default_text() (the default of the int4 recipes)


def _shipped(name: str) -> str:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), encoding="utf-8") as fh:
        return fh.read()


def builtin_text() -> str:
    """calib_builtin.txt: original prose, dialogue, code, arithmetic, a few lines of French / Spanish / German /
    Chinese; written for this project, ~4.8k SmolLM2 tokens."""
    return _shipped("calib_builtin.txt")


def docs_text() -> str:
    """calib_docs.txt: a frozen copy of calib_text.stdlib_text() as CPython 3.11.7 gives it (docstrings of 37
    standard-library modules, PSF license; ~24.6k SmolLM2 tokens), so the default calibration, and so a default
    int4 file, does not depend on the Python that runs the converter."""
    return _shipped("calib_docs.txt")


def default_text() -> str:
    """--calib builtin: calib_builtin.txt, then calib_docs.txt. With the 16384-token default about 4.8k tokens
    of the first and 11.6k of the second (SmolLM2). Session 25 (bench/README.md): KL to the f16 model's logits
    on text neither contains (GNU / Apache license texts) 0.155 with calib_builtin.txt alone (4803 tokens),
    0.117 with this — more tokens, not only the genre, make the difference."""
    return builtin_text().rstrip("\n") + "\n\n" + docs_text()


def _site(p, tied: bool) -> tuple[int, str] | None:
    if p.layer is not None:
        s = SITE_OF_ROLE.get(p.role)
        return None if s is None else (int(p.layer), s)
    if p.role == "head" or (p.role == "embedding" and tied):
        return (-1, "head_in")
    return None


def collect_native(edge_path: str, plan: Iterable, tokens: list[int], ctx: int = 512, max_tokens: int = 8192,
                   hessians: bool = False, threads: int = 0, tied: bool = True
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """See the module docstring. tied: the plan has no separate head tensor (tok_embd is the head)."""
    try:
        from edgerun import _core
    except ImportError as e:
        raise RuntimeError(f"calibration runs the edgerun runtime, which is not importable ({e})") from None
    tokens = [int(t) for t in list(tokens)[:max_tokens]]
    if len(tokens) < 2:
        raise ValueError(f"calibration text gives {len(tokens)} tokens; need at least 2")
    m = _core.Model(edge_path, threads=threads, ctx=ctx, batch=min(ctx, 512), kv="f32")  # f32 activations
    m.calib_begin(hessian=hessians)
    try:
        for s in range(0, len(tokens), ctx):
            chunk = tokens[s:s + ctx]
            if len(chunk) < 2 and s > 0:
                break
            m.reset()
            m.eval(np.asarray(chunk, np.int32), all_logits=True)  # all rows through the head (head_in)
    finally:
        entries = m.calib_end()
    del m
    stats = {(e["layer"], e["site"]): e for e in entries if e["expert"] == -1}
    imp: dict[str, np.ndarray] = {}
    hmap: dict[str, np.ndarray] | None = {} if hessians else None
    shared: dict[tuple[int, str], np.ndarray] = {}
    for p in plan:
        key = _site(p, tied)
        if key is None or key not in stats:
            continue
        e = stats[key]
        n = max(1, int(e["count"]))
        imp[p.name] = (e["sumsq"] / n).astype(np.float32)
        if hessians and e["xtx"] is not None:
            if key not in shared:
                h = e["xtx"]
                h /= np.float32(n)
                shared[key] = h
            hmap[p.name] = shared[key]
    return imp, hmap
