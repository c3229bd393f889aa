"""blas_threads(n): a context manager that runs its body with at most n OpenBLAS threads (numpy's and
scipy's copies of OpenBLAS), restoring the previous counts afterwards.

Why: LAPACK factorisations of GPTQ's small matrices (Cholesky / triangular inverse of 576² .. 1536²) made
of many small parallel steps are 10-50x SLOWER with two OpenBLAS threads than with one when the other core is
busy (measured on the 2-core machine with one busy process: 576² Cholesky 0.12 s vs 0.005 s; the SmolLM2-135M
int4 export spent 71 s in 121 of them). Large matrix products still gain from the second core.

How: ctypes on the OpenBLAS libraries this process has loaded (/proc/self/maps), through their exported
`*openblas_set_num_threads*` / `*get_num_threads*` symbols (numpy wheels: scipy_openblas_*64_). Where none is
found (another BLAS, another OS) it does nothing: results never depend on it, only speed.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

__all__ = ["blas_threads"]

_SUFFIXES = ("64_", "", "_64_", "_")
_PREFIXES = ("scipy_openblas_", "openblas_")
_cache: dict[str, tuple | None] = {}  # library path -> (get, set) or None


def _pair(path: str) -> tuple | None:
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for pre in _PREFIXES:
        for suf in _SUFFIXES:
            g, s = getattr(lib, f"{pre}get_num_threads{suf}", None), getattr(lib, f"{pre}set_num_threads{suf}", None)
            if g is not None and s is not None:
                g.restype, g.argtypes, s.restype, s.argtypes = ctypes.c_int, [], None, [ctypes.c_int]
                return g, s
    return None


def _find() -> list[tuple]:
    """(get, set) of every OpenBLAS loaded now (scipy's appears only once scipy.linalg is imported)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return []
    for p in paths:
        if p not in _cache:
            _cache[p] = _pair(p)
    return [_cache[p] for p in paths if _cache[p] is not None]


@contextmanager
def blas_threads(n: int):
    """Run the body with min(current, n) OpenBLAS threads in every loaded OpenBLAS."""
    import numpy  # noqa: F401  (numpy's OpenBLAS must be loaded before the search)

    libs = _find()
    old = [g() for g, _ in libs]
    try:
        for (g, s), o in zip(libs, old):
            s(max(1, min(o, n)))
        yield
    finally:
        for (g, s), o in zip(libs, old):
            s(o)
