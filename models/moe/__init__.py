"""Mixture-of-experts reference (docs/MOE.md): the numerical spec for SmallThinker, Qwen3-MoE, Mixtral, OLMoE.

    shape.py      MoeShape: llm.* + moe.* keys -> hyper-parameters and the tensor table
    routing.py    route (top-k, softmax/sigmoid gating, renormalisation), expert FFN, linear predictor
    attention.py  attention with per-layer RoPE/NoPE, sliding window, q/k norm per head or full
    reference.py  MoeReference (logits, KV cache, routing trace, greedy) and LayerRouting
    hf_folder.py  an HF MoE folder (config.json + safetensors shards) -> our config and weights (lazy)
    tiny.py       tiny random MoE models as HF folders, for tests            (needs transformers)
HF names and config keys: models/hf_names.py (MoE section). Large random SmallThinker: models/random_moe.py.
"""

from .reference import LayerRouting, MoeReference
from .routing import expert, moe_ffn, predictor_logits, route
from .shape import MoeShape

__all__ = ["MoeReference", "LayerRouting", "MoeShape", "route", "expert", "moe_ffn", "predictor_logits"]
