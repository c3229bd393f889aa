"""Backend switches for a test: the CUDA backend reads its EDGE_CUDA_* variables when it starts (docs/CUDA.md)."""
import os
import sys

import edgerun

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from env_scope import scoped_env  # noqa: E402,F401  (bench/env_scope.py; tests use it from here)


def cuda_model(path, env, **kw):
    """edgerun.Model(path, device="cuda", **kw) created with the backend switches in env."""
    with scoped_env(**env):
        return edgerun.Model(path, device="cuda", **kw)
