"""Architecture modules (one per family) and the registry that maps HF / GGUF names to them."""
from .registry import (ARCHS, ROLES, UNSUPPORTED, Arch, ExpertSpec, MoeSpec, TensorSpec, arch_for_gguf, arch_for_hf,
                       register, supported)
from . import llama, qwen2, qwen3, qwen3moe, mixtral, olmoe, smallthinker  # noqa: F401  (registers the families)
from .plan import ExpertPart, PlannedExpert, PlannedTensor, hf_hparams, plan_experts, plan_tensors

__all__ = ["ARCHS", "ROLES", "UNSUPPORTED", "Arch", "ExpertSpec", "MoeSpec", "TensorSpec", "PlannedTensor",
           "PlannedExpert", "ExpertPart", "arch_for_gguf", "arch_for_hf", "hf_hparams", "plan_experts",
           "plan_tensors", "register", "supported"]
