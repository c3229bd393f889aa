"""edgerun — on-device LLM runtime: a Python API over the C++ core (`_core`)."""

from . import _core
from ._core import __version__  # pyproject.toml's version, compiled into _core by CMakeLists.txt
from ._core import BadFileError, EdgeError, MemoryBudgetError, UnsupportedError
from .model import Model
from .sizes import format_size, parse_size
from .train import train  # the function edgerun.train(...); the package is edgerun.train.{adapter,data,loop}

__all__ = ["Model", "EdgeError", "BadFileError", "UnsupportedError", "MemoryBudgetError", "parse_size",
           "format_size", "train", "_core", "__version__"]
