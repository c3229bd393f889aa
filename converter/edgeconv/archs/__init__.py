"""Architecture modules (one per family) and the registry that maps HF / GGUF names to them."""
from .registry import ARCHS, ROLES, Arch, TensorSpec, arch_for_gguf, arch_for_hf, register, supported
from . import llama, qwen2, qwen3  # noqa: F401  (registers the families)
from .plan import PlannedTensor, hf_hparams, plan_tensors

__all__ = ["ARCHS", "ROLES", "Arch", "TensorSpec", "PlannedTensor", "arch_for_gguf", "arch_for_hf", "hf_hparams",
           "plan_tensors", "register", "supported"]
