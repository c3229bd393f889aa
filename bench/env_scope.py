"""Environment variables set for one block (the CUDA backend reads its EDGE_CUDA_* switches when it starts: docs/CUDA.md).
Used by bench/bench_cuda.py and tests/env_util.py."""
import contextlib
import os


@contextlib.contextmanager
def scoped_env(**env):
    """os.environ with env set (values as str) inside the block, restored after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
