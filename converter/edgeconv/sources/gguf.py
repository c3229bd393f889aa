"""A GGUF file (llama.cpp), read with gguf.GGUFReader (memory-mapped).

* Any GGUF tensor type is dequantized to float32 with gguf.quants.dequantize (the stored values, not
  the original ones: re-quantizing a Q4 GGUF compounds the error; `quantized` is set so the exporter
  can say so).
* Exact import (stored_dtype / load_stored, sources/base.py): the block types an .edge dtype holds byte for
  byte are GGUF_EXACT (Q4_0 = int4_32: f16 d + 16 bytes, x = d·(q − 8); Q4_1 = int4a_32: f16 d, f16 m +
  16 bytes, x = d·q + m; both with byte j = element j low nibble, element j + 16 high nibble, as
  csrc/quant.h; Q8_0 = q8_0; IQ4_NL = nl4_32: f16 d + 16 bytes of the same nibble order, x = d·table[q]
  with the same 16-entry table; Q5_0 / Q4_K / Q6_K = q5_0 / q4_k / q6_k, GGML's own blocks (csrc/quant.h);
  F32/F16/BF16 = f32/f16/bf16), for little-endian files. Other types (Q5_1, Q2_K/Q3_K/Q5_K, the other IQ*)
  have no exact .edge form and are only dequantized.
* MoE families (qwen3moe, llama with expert_count = Mixtral, olmoe, smallthinker): moe.* keys and the
  layout from sources/gguf_moe.py; experts are slices of the fused blk.i.ffn_{gate,up,down}_exps tensors
  (archs/plan.plan_experts).
* Hyper-parameters `<arch>.*` -> llm.* (block_count, embedding_length, attention.head_count[_kv],
  attention.key_length, feed_forward_length, vocab_size, context_length, rope.freq_base,
  attention.layer_norm_rms_epsilon). RoPE scaling and partial rotary dims are rejected.
* tokenizer.ggml.* -> tokenizer.* (model, pre, tokens, scores, token_type, merges, bos/eos/unk/pad ids,
  add_bos) and tokenizer.chat_template.
* The un-permutation of llama-family attn_q/attn_k rows is declared by the architecture
  (Arch.gguf_qk_permuted) and applied by the exporter (export.unpermute_rope_rows).
* Opening validates the file before anything is read from it (untrusted bytes): every tensor's type, element
  count and byte range are checked against the file size while the gguf reader lists them (a tensor past
  the end is "truncated", named), and any exception of the gguf reader or of reading the metadata becomes
  GGUFFileError (a ValueError) naming the file — one line, never the reader's IndexError / reshape error.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..archs import arch_for_gguf, arch_keys
from .base import Source

_PLAIN = ("F32", "F16", "BF16", "F64")
# GGML type name -> the .edge dtype whose blocks are the same bytes (tests/test_gguf_exact.py checks it)
GGUF_EXACT = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0", "Q4_0": "int4_32", "Q4_1": "int4a_32",
              "IQ4_NL": "nl4_32", "Q5_0": "q5_0", "Q4_K": "q4_k", "Q6_K": "q6_k"}


def _field(reader, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.contents()
    return v


class GGUFFileError(ValueError):
    """A GGUF file that cannot be read: corrupt, truncated or malformed. The message names the file."""


def _checked_reader(gguf, path: str):
    """gguf.GGUFReader(path), with each tensor's range checked before the reader slices (and reshapes) it."""

    class CheckedReader(gguf.GGUFReader):
        def _build_tensors(self, start_offs: int, fields: list) -> None:
            for field in fields:
                _check_tensor_field(gguf, path, len(self.data), start_offs, field)
            super()._build_tensors(start_offs, fields)

    return CheckedReader(path, "r")


def _check_tensor_field(gguf, path: str, file_size: int, start_offs: int, field) -> None:
    """One tensor-info entry (parts: name length, name, n_dims, dims, type, offset) against the file."""
    try:
        _, name_data, _, dims, raw_type, offset = field.parts
    except ValueError:  # a gguf version with another layout: its own reader checks what it checks
        return
    name = bytes(name_data).decode("utf-8", "replace")
    try:
        qtype = gguf.GGMLQuantizationType(int(raw_type[0]))
    except ValueError:
        raise GGUFFileError(f"{path}: tensor {name!r} has unknown GGML type {int(raw_type[0])} (corrupt tensor "
                            "table?)") from None
    shape = [int(d) for d in dims]
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    if not shape or n == 0 or shape[0] % block:
        raise GGUFFileError(f"{path}: tensor {name!r} has shape {shape[::-1]} that {qtype.name} (blocks of {block}) "
                            "cannot hold (corrupt tensor table?)")
    begin = start_offs + int(offset[0])
    end = begin + n // block * type_size
    if end > file_size:
        raise GGUFFileError(f"{path}: truncated: tensor {name!r} ({qtype.name} {shape[::-1]}) needs bytes {begin} to "
                            f"{end}, but the file has {file_size} bytes (cut short, or a corrupt tensor table)")


class GGUFSource(Source):
    kind = "gguf"
    naming = "gguf"

    def __init__(self, path: str):
        super().__init__()
        try:
            import gguf
        except ImportError:
            raise RuntimeError("reading GGUF needs the gguf package: pip install gguf") from None
        self.path = path
        try:
            self.reader = _checked_reader(gguf, path)
        except GGUFFileError:
            raise
        except OSError as e:
            raise GGUFFileError(f"{path}: cannot read: {e.strerror or e}") from None
        except Exception as e:  # the reader's checks (version, alignment, field types), or it read past the end
            raise GGUFFileError(f"{path}: not a readable GGUF file, corrupt or truncated ({type(e).__name__}: "
                                f"{' '.join(str(e).split())})") from None
        self._gguf = gguf
        try:
            self._read_header()
        except Exception as e:
            text = " ".join(str(e).split())
            if isinstance(e, ValueError) and path in text:  # already one of ours, naming the file
                raise
            if isinstance(e, ValueError) and not isinstance(e, UnicodeError):  # e.g. an unsupported architecture
                raise GGUFFileError(f"{path}: {text}") from None
            raise GGUFFileError(f"{path}: corrupt GGUF metadata ({type(e).__name__}: {text})") from None

    def _read_header(self) -> None:
        """Architecture, shapes, hyper-parameters and tokenizer from the reader's metadata."""
        path = self.path
        arch_name = _field(self.reader, "general.architecture")
        if not isinstance(arch_name, str):
            raise ValueError(f"{path}: GGUF has no general.architecture")
        self.arch = arch_for_gguf(arch_name, bool(_field(self.reader, f"{arch_name}.expert_count") or 0))
        self._tensors = {t.name: t for t in self.reader.tensors}
        # GGUF lists ne[0] (contiguous) first; numpy / our order is the reverse.
        self.shapes = {n: tuple(int(s) for s in reversed(t.shape.tolist())) for n, t in self._tensors.items()}
        self.quantized = any(t.tensor_type.name not in _PLAIN for t in self._tensors.values())
        self.quant_types = sorted({t.tensor_type.name for t in self._tensors.values()})
        self.hparams = self._hparams(arch_name)
        self.tie_config = False  # a GGUF is tied iff it has no output.weight (never the family's HF default)
        self.tokenizer = self._tokenizer()
        self.general = {"general.name": _field(self.reader, "general.name") or os.path.basename(path),
                        "general.source": f"gguf:{os.path.basename(path)}"}

    def _get(self, key: str, default: Any = None, required: bool = False) -> Any:
        v = _field(self.reader, key)
        if v is None:
            if required:
                raise ValueError(f"{self.path}: GGUF metadata {key!r} is missing")
            return default
        if isinstance(v, list):
            raise ValueError(f"{self.path}: GGUF metadata {key!r} is per-layer ({v[:4]}...); only uniform "
                             "layers are supported")
        return v

    def _hparams(self, a: str) -> dict:
        g = self._get
        where = f"{self.path} ({a})"
        st = g(f"{a}.rope.scaling.type")
        if st not in (None, "none"):
            raise ValueError(f"{where}: RoPE scaling {st!r} is not supported (only plain RoPE)")
        if "rope_freqs.weight" in self._tensors:
            raise ValueError(f"{where}: rope_freqs.weight (Llama-3.1-style RoPE scaling) is not supported")
        d_model = int(g(f"{a}.embedding_length", required=True))
        n_heads = int(g(f"{a}.attention.head_count", required=True))
        n_kv = int(g(f"{a}.attention.head_count_kv", n_heads))
        head_dim = int(g(f"{a}.attention.key_length", 0) or self.arch.default_head_dim or d_model // n_heads)
        vlen = g(f"{a}.attention.value_length")
        if vlen is not None and int(vlen) != head_dim:
            raise ValueError(f"{where}: value_length {vlen} != key_length {head_dim} is not supported")
        rot = g(f"{a}.rope.dimension_count")
        if rot is not None and int(rot) != head_dim:
            raise ValueError(f"{where}: partial rotary (rope.dimension_count {rot} of head_dim {head_dim}) "
                             "is not supported")
        n_layers = int(g(f"{a}.block_count", required=True))
        if self.arch.moe is not None:
            from .gguf_moe import gguf_moe_hparams

            moe = gguf_moe_hparams(self.arch, g, self.shapes, n_layers, where)
        else:
            moe = {"llm.d_ff": int(g(f"{a}.feed_forward_length", required=True))}
        vocab = g(f"{a}.vocab_size")
        if vocab is None:
            emb = self.shapes.get("token_embd.weight")
            if emb is None:
                raise ValueError(f"{where}: no {a}.vocab_size and no token_embd.weight")
            vocab = emb[0]
        hp = {
            "llm.n_layers": n_layers,
            "llm.d_model": d_model,
            "llm.n_heads": n_heads,
            "llm.n_kv_heads": n_kv,
            "llm.head_dim": head_dim,
            "llm.d_ff": moe.pop("llm.d_ff"),
            "llm.vocab_size": int(vocab),
            "llm.max_ctx": int(g(f"{a}.context_length", 2048)),
            "llm.rope_theta": float(g(f"{a}.rope.freq_base", 10000.0)),
            "llm.rms_eps": float(g(f"{a}.attention.layer_norm_rms_epsilon", required=True)),
            **arch_keys(self.arch),
            **moe,
        }
        if self.arch.gguf_global_period:  # llama.cpp's swa pattern (Gemma 3): every period-th block is global
            window = int(g(f"{a}.attention.sliding_window", required=True))
            if window < 1:
                raise ValueError(f"{where}: sliding_window {window} must be >= 1")
            p = self.arch.gguf_global_period
            hp["llm.swa_layers"] = [int((i + 1) % p != 0) for i in range(n_layers)]
            hp["llm.swa_window"] = window
            hp["llm.rope_theta_swa"] = float(self.arch.gguf_rope_theta_swa)
        if self.arch.embed_scale_sqrt:
            hp["llm.embed_scale"] = math.sqrt(d_model)
        return hp

    def _tokenizer(self) -> dict:
        g = lambda k: _field(self.reader, k)  # noqa: E731
        model = g("tokenizer.ggml.model")
        if model is None:
            return {}
        if model not in ("gpt2", "llama"):
            raise ValueError(f"{self.path}: tokenizer model {model!r} is not supported (gpt2 or llama)")
        out: dict[str, Any] = {"tokenizer.model": model,
                               "tokenizer.pre": g("tokenizer.ggml.pre") or "default",
                               "tokenizer.tokens": list(g("tokenizer.ggml.tokens") or [])}
        types = g("tokenizer.ggml.token_type")
        out["tokenizer.token_type"] = [int(t) for t in types] if types is not None else \
            [1] * len(out["tokenizer.tokens"])
        scores = g("tokenizer.ggml.scores")
        if scores is not None:
            out["tokenizer.scores"] = np.asarray(scores, dtype=np.float32)
        merges = g("tokenizer.ggml.merges")
        if merges is not None:
            out["tokenizer.merges"] = list(merges)
        for ours, theirs in (("bos_id", "bos_token_id"), ("eos_id", "eos_token_id"),
                             ("unk_id", "unknown_token_id"), ("pad_id", "padding_token_id")):
            v = g(f"tokenizer.ggml.{theirs}")
            out[f"tokenizer.{ours}"] = -1 if v is None else int(v)
        add_bos = g("tokenizer.ggml.add_bos_token")
        out["tokenizer.add_bos"] = int(bool(model == "llama" if add_bos is None else add_bos))
        space = g("tokenizer.ggml.add_space_prefix")
        if model == "llama" and space is not None and not space:
            out["tokenizer.add_space_prefix"] = 0  # SentencePiece without the dummy prefix (Gemma)
        ct = g("tokenizer.chat_template")
        if ct:
            out["tokenizer.chat_template"] = ct
        return out

    def load(self, name: str) -> np.ndarray:
        t = self._tensors[name]
        data = self._gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(data, dtype=np.float32).reshape(self.shapes[name])

    def stored_dtype(self, name: str) -> str | None:
        if self.reader.endianess != self._gguf.GGUFEndian.LITTLE:
            return None
        return GGUF_EXACT.get(self._tensors[name].tensor_type.name)

    def load_stored(self, name: str) -> np.ndarray:
        if self.stored_dtype(name) is None:
            return super().load_stored(name)
        shape = self.shapes[name]
        rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
        return np.asarray(self._tensors[name].data).view(np.uint8).reshape(rows, -1)  # memory-mapped

    def close(self) -> None:
        self._tensors = {}
        self.reader = None
