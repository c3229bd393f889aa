"""Architecture modules (one per family) and the registry that maps HF / GGUF names to them.

Every module of this package other than registry.py and plan.py is a family module and is imported here
(in name order), which registers it: adding a family is adding its file (registry.py says what it declares).
"""
import importlib
import pkgutil

from .registry import (ARCHS, LAYOUT_KEYS, ROLES, UNSUPPORTED, Arch, ExpertSpec, MoeSpec, TensorSpec, arch_for_gguf,
                       arch_for_hf, arch_keys, register, supported)
from .plan import ExpertPart, PlannedExpert, PlannedTensor, hf_hparams, plan_experts, plan_tensors

_NOT_FAMILIES = {"registry", "plan"}
FAMILY_MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_FAMILIES))
for _name in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["ARCHS", "FAMILY_MODULES", "LAYOUT_KEYS", "ROLES", "UNSUPPORTED", "Arch", "ExpertSpec", "MoeSpec",
           "TensorSpec", "PlannedTensor", "PlannedExpert", "ExpertPart", "arch_for_gguf", "arch_for_hf", "arch_keys",
           "hf_hparams", "plan_experts", "plan_tensors", "register", "supported"]
