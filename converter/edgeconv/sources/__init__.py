"""Checkpoint readers. open_source(path) picks one by what the path is:
  *.gguf file               -> GGUFSource (sources/gguf.py)
  folder with config.json   -> HFSource   (sources/hf.py)
  *.pt / *.pth / *.bin file -> TorchSource (sources/torch_ckpt.py)
  *.onnx file               -> OnnxSource (sources/onnx_src.py; needs the onnx package)
  folder with genai_config.json and no config.json -> OnnxSource on the model it names (ONNX Runtime GenAI)
"""
from __future__ import annotations

import os

from .base import Source


def open_source(path: str, tokenizer_pre: str | None = None) -> Source:
    if os.path.isdir(path):
        from .onnx_src import onnx_model_in

        model = onnx_model_in(path)
        if model is not None:
            from .onnx_src import OnnxSource

            return OnnxSource(model, tokenizer_pre)
        from .hf import HFSource

        return HFSource(path, tokenizer_pre)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        if tokenizer_pre:
            raise ValueError("--tokenizer-pre applies to HF tokenizers; a GGUF carries its own tokenizer.ggml.pre")
        from .gguf import GGUFSource

        return GGUFSource(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        from .onnx_src import OnnxSource

        return OnnxSource(path, tokenizer_pre)
    if ext in (".pt", ".pth", ".bin", ".ckpt") or magic[:2] == b"PK":
        from .torch_ckpt import TorchSource

        return TorchSource(path, tokenizer_pre)
    raise ValueError(f"{path}: unknown checkpoint kind (expected a .gguf file, an HF folder with config.json, "
                     f"or a .pt/.pth PyTorch checkpoint)")


__all__ = ["Source", "open_source"]
