"""Next-token scores of a run of logits in float64, shared by the tests and benchmarks that compare engines
on the same token ids (tests/test_gemma3.py, bench/bench_kquant_gemma.py).

  next_token_nll(logits, ids)   [len(ids) - 1]: −log softmax(logits[j])[ids[j + 1]] (logits: [len(ids), vocab])
  perplexity(logits, ids)       exp of their mean
"""
from __future__ import annotations

import numpy as np


def next_token_nll(logits, ids) -> np.ndarray:
    lg = np.asarray(logits[:-1], dtype=np.float64)
    tgt = np.asarray(ids[1:])
    mx = lg.max(1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(1)) + mx[:, 0]
    return lse - lg[np.arange(len(tgt)), tgt]


def perplexity(logits, ids) -> float:
    return float(np.exp(np.mean(next_token_nll(logits, ids))))
