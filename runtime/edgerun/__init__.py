"""edgerun — on-device LLM runtime (Python API over the C++ core)."""
from . import _core

__all__ = ["_core"]
__version__ = "0.1.0"
