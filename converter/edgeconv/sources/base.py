"""What every checkpoint reader gives the exporter.

A Source is opened on a path and exposes, without loading any weight:
  arch        the architecture declaration (archs.Arch subclass)
  naming      which name column of the arch's tensor table the source uses: "hf", "gguf" or "edge"
  hparams     llm.* keys (without llm.tied_head, which the plan decides)
  tie_config  the config's tie_word_embeddings (None when the source does not say)
  tokenizer   tokenizer.* keys ({} when the source has no tokenizer)
  general     general.name / general.source
  quantized   True when the stored weights are already quantized (GGUF Q*): re-quantizing them loses more
  quant_types the source's stored tensor types when quantized (for the exporter's note), else []
  shapes      {source tensor name: shape, numpy order}
  notes       what the reader had to approximate (the exporter reports them), e.g. ONNX MatMulNBits blocks
              that no .edge dtype holds exactly
and loads one tensor at a time with load(name) -> float32 array in source layout.
stored_dtype(name) is the .edge dtype whose bytes are exactly how the source stores tensor `name` (GGUF
Q4_0 -> int4_32, Q4_1 -> int4a_32, Q8_0 -> q8_0, IQ4_NL -> nl4_32, Q5_0/Q4_K/Q6_K -> q5_0/q4_k/q6_k,
F32/F16/BF16 -> f32/f16/bf16), None when no .edge dtype
holds it exactly (Q5_1, other K-quants, sources that only give floats); load_stored(name) then gives those bytes as
uint8 [rows, row bytes] (rows = all dims but the last, source layout), so the exporter can copy the
blocks instead of dequantizing and re-quantizing them (export.py, recipes.py "keep"). mapped_file(name) is the
safetensors mapping holding tensor `name` (None for sources that load through a library), which lets the
exporter read a large tensor in row blocks and release its pages (moe/source.py).
"""
from __future__ import annotations

import json
import struct
from contextlib import contextmanager
from typing import Any

import numpy as np

# What interpreting malformed file contents raises besides ValueError (a JSON list where a dict belongs,
# a missing key, a string where a number belongs, nesting deep enough to exhaust the recursion limit).
_MALFORMED = (TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError, struct.error)


@contextmanager
def malformed(path: str, what: str):
    """Interprets untrusted file contents: any ValueError that does not name `path`, and any of _MALFORMED,
    becomes one ValueError "<path>: <what> (<the error>)" — the converter's one-line error (tests/fuzz)."""
    try:
        yield
    except ValueError as e:
        text = " ".join(str(e).split())
        if path in text:
            raise
        raise ValueError(f"{path}: {what} ({text})") from None
    except _MALFORMED as e:
        text = " ".join(str(e).split())[:300]
        raise ValueError(f"{path}: {what} ({type(e).__name__}: {text})") from None


def read_json_object(path: str, what: str) -> dict:
    """A JSON file that must hold an object; anything else is a ValueError naming the file."""
    with malformed(path, f"{what} is not valid JSON"):
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, not {type(obj).__name__}")
    return obj


class Source:
    kind = ""
    naming = "hf"

    def __init__(self) -> None:
        self.arch = None
        self.hparams: dict[str, Any] = {}
        self.tie_config: bool | None = None
        self.tokenizer: dict[str, Any] = {}
        self.general: dict[str, str] = {}
        self.quantized = False
        self.quant_types: list[str] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.notes: list[str] = []

    def load(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def stored_dtype(self, name: str) -> str | None:
        """The .edge dtype holding tensor `name`'s stored bytes exactly, or None."""
        return None

    def load_stored(self, name: str) -> np.ndarray:
        """uint8 [rows, row bytes]: the stored bytes of a tensor whose stored_dtype is not None."""
        raise NotImplementedError(f"{self.kind} source: {name} has no exactly stored form")

    def mapped_file(self, name: str):
        """The safetensors_np.SafetensorsFile whose mapping holds `name`, or None."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
