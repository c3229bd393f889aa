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


# What `edgeconv export --quant int4` writes (calibrated, GPTQ, recipe int4g), as the GPU tests build it. A tiny
# model's 4.5 b/w budget goes to its tokenizer metadata, so the per-role forms a real model gets (SmolLM2-135M:
# attn_v int4a_32, attn_k / ffn_down / ffn_up nl4_32 beside an int4_64 gate, refined scales) are asked for explicitly.
INT4G_EXPORT = dict(recipe="int4", calib="builtin", gptq=True,
                    tensor_types=["attn_v=int4a_32", "attn_k=nl4_32", "ffn_down=nl4_32", "ffn_up=nl4_32"])
