"""A greedy path checked against a reference engine, for tests whose two engines sum in different orders.

assert_greedy_path(ref, other, prompt, n, tol): `other` decodes n greedy tokens; `ref` scores prompt + those
tokens in one pass; at every step the chosen token must be ref's argmax, or within tol · max|logit| of it
(a near-tie, where the order of float sums may pick either). A token ref ranks clearly lower fails, naming
the step and the gap. Returns the number of near-tie steps (tests bound it too)."""
import numpy as np


def assert_greedy_path(ref, other, prompt, n, tol, max_ties=2):
    prompt = [int(t) for t in prompt]
    out: list[int] = []
    list(other.generate(prompt, max_tokens=n, temperature=0, stop_ids=[], tokens_out=out))
    assert len(out) == n, f"generated {len(out)} tokens, not {n}"
    lg = ref.logits(prompt + out[:-1])[len(prompt) - 1:]
    ties = 0
    for i, t in enumerate(out):
        row = lg[i]
        gap = float(row.max() - row[t])
        if gap > 0:
            bound = tol * float(np.abs(row).max())
            assert gap <= bound, f"step {i}: token {t} is {gap:.4g} below the reference's argmax {int(row.argmax())} (bound {bound:.4g})"
            ties += 1
    assert ties <= max_ties, f"{ties} near-tie steps in {n}"
    return ties
