"""Backend switches for a test: the CUDA backend reads its EDGE_CUDA_* variables when it starts (docs/CUDA.md)."""
import contextlib
import os

import edgerun


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


def cuda_model(path, env, **kw):
    """edgerun.Model(path, device="cuda", **kw) created with the backend switches in env."""
    with scoped_env(**env):
        return edgerun.Model(path, device="cuda", **kw)
