"""A PyTorch checkpoint (.pt / .pth / .bin) read safely.

The file is opened with torch.load(weights_only=True, map_location="cpu", mmap=True): only tensors and
plain containers are unpickled, so no code in the checkpoint ever runs. A checkpoint whose pickle holds
anything else is refused with an error that says it was NOT executed. A file torch cannot read at all
(random bytes, a broken zip, an empty file) is "not a PyTorch checkpoint" — unless it really is a pickle
that names Python globals (pickletools reads its opcodes; nothing runs), which gets the refusal.

Accepted payloads: a raw state dict {name: tensor}, or {"state_dict" | "model": state dict, "config": dict}.
Prefixes "module." (DDP) and "_orig_mod." (torch.compile) are stripped. Tensor names are either HF names
(model.layers.0.self_attn.q_proj.weight, ...) or our .edge names (blk.0.attn_q, ...). The config is the
checkpoint's "config" (an HF config dict) or config.json beside the file; tokenizer files beside it are
used when present. torch is an optional dependency.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..archs import arch_for_hf, hf_hparams
from .base import Source, malformed, read_json_object
from .hf_tokenizer import read_hf_tokenizer

_PREFIXES = ("module.", "_orig_mod.")


def _torch():
    try:
        import torch
    except ImportError:
        raise RuntimeError("reading PyTorch checkpoints (.pt/.pth/.bin) needs torch: pip install torch "
                           "(or convert the checkpoint to safetensors)") from None
    return torch


def load_state_dict(path: str) -> tuple[dict[str, Any], dict | None]:
    """(state dict of torch tensors, embedded config or None). Never executes pickled code."""
    torch = _torch()
    import pickle

    def _load(mmap: bool):
        with warnings.catch_warnings():  # torch's multi-line warnings about old pickle protocols: errors say it
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)

    try:
        try:
            obj = _load(True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = _load(False)  # legacy (non-zip) serialization cannot be mmapped
    except Exception as e:  # untrusted bytes: whatever torch.load raises becomes one of the two errors below
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        named_globals = [ln for ln in lines if "GLOBAL" in ln]
        if not (isinstance(e, pickle.UnpicklingError) and named_globals) and not _pickle_with_globals(path):
            why = [ln for ln in lines if "Unsupported" in ln or "load key" in ln] or [ln.split(". ")[0] for ln in lines]
            raise ValueError(f"{path}: not a PyTorch checkpoint (torch.load cannot read it: "
                             f"{(why or [type(e).__name__])[0]})") from None
        first = (named_globals or lines or [type(e).__name__])[0]
        raise ValueError(f"{path}: refused — the checkpoint contains pickled Python objects other than tensors, "
                         f"and loading them could run arbitrary code. It was NOT executed (weights_only load "
                         f"stopped: {first}). Re-save it as a plain state dict (torch.save(model.state_dict(), "
                         f"path)) or as safetensors.") from None
    config = None
    sd = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                sd = obj[key]
                break
        if isinstance(obj.get("config"), dict):
            config = obj["config"]
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{path}: not a state dict (got {type(sd).__name__}); expected {{name: tensor}} or "
                         f"{{'state_dict'|'model': {{name: tensor}}, 'config': {{...}}}}")
    out = {}
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            continue  # non-tensor entries (step counters, ...) carry no weights
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    if not out:
        raise ValueError(f"{path}: the state dict holds no tensors")
    return out, config


def _pickle_with_globals(path: str) -> bool:
    """True if the file (or a zip checkpoint's data.pkl) is a whole, well-formed pickle that names Python
    globals. Only pickletools reads it (opcodes, never executed)."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                if not pkl:
                    return False
                data = z.read(pkl[0])
        else:
            with open(path, "rb") as f:
                data = f.read(64 << 20)
        names_global = False
        for op, _arg, _pos in pickletools.genops(data):  # stops after STOP; raises on anything malformed
            names_global |= op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE")
        return names_global
    except Exception:
        return False


class TorchSource(Source):
    kind = "torch"

    def __init__(self, path: str, tokenizer_pre: str | None = None):
        super().__init__()
        self.path = path
        self._sd, config = load_state_dict(path)
        folder = os.path.dirname(os.path.abspath(path))
        if config is None:
            cfg_path = os.path.join(folder, "config.json")
            if not os.path.exists(cfg_path):
                raise ValueError(f"{path}: the checkpoint has no 'config' and there is no config.json beside it")
            config = read_json_object(cfg_path, "config.json")
        self.config = config
        with malformed(path, "its config does not describe a supported model"):
            self.arch = arch_for_hf(config)
            self.hparams = hf_hparams(self.arch, config)
        self.tie_config = config.get("tie_word_embeddings")
        if "tok_embd" in self._sd:
            self.naming = "edge"
        elif "model.embed_tokens.weight" in self._sd:
            self.naming = "hf"
        else:
            raise ValueError(f"{path}: cannot tell the tensor naming (neither 'model.embed_tokens.weight' nor "
                             f"'tok_embd' present; first names: {list(self._sd)[:5]})")
        self.shapes = {k: tuple(v.shape) for k, v in self._sd.items()}
        with malformed(folder, "bad tokenizer files"):
            self.tokenizer = read_hf_tokenizer(folder, config, self.hparams["llm.vocab_size"], tokenizer_pre)
        self.general = {"general.name": config.get("_name_or_path") or os.path.splitext(os.path.basename(path))[0],
                        "general.source": f"torch:{os.path.basename(path)}"}

    def load(self, name: str) -> np.ndarray:
        return self._sd[name].detach().float().numpy()

    def close(self) -> None:
        self._sd = {}
