"""Checkpoint readers. open_source(path) picks one by what the path is:
  *.gguf file               -> GGUFSource (sources/gguf.py)
  folder with config.json   -> HFSource   (sources/hf.py)
  *.pt / *.pth / *.bin file -> TorchSource (sources/torch_ckpt.py)
  *.onnx file               -> not supported yet: a ValueError that says so
"""
from __future__ import annotations

import os

from .base import Source


def open_source(path: str, tokenizer_pre: str | None = None) -> Source:
    if os.path.isdir(path):
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
        raise ValueError(f"{path}: ONNX models are not supported yet; convert the model's Hugging Face folder, "
                         "a GGUF or a .pt checkpoint instead")
    if ext in (".pt", ".pth", ".bin", ".ckpt") or magic[:2] == b"PK":
        from .torch_ckpt import TorchSource

        return TorchSource(path, tokenizer_pre)
    raise ValueError(f"{path}: unknown checkpoint kind (expected a .gguf file, an HF folder with config.json, "
                     f"or a .pt/.pth PyTorch checkpoint)")


__all__ = ["Source", "open_source"]
