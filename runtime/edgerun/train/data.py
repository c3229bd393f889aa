"""Training data for edgerun.train: token windows and their loss masks, in a fixed, seeded order.

    ds = load_data(model, "notes.txt", seq=256)      # or a .jsonl of chat records
    tokens, mask = ds.batch(order, start, batch)      # int32 [B, S], uint8 [B, S]

Mask convention (docs/TRAINING.md, _core.Trainer): mask[b, t] = 1 when the prediction made at position t —
of target tokens[b, t + 1] — is scored; the last column is never scored; padding is never scored.
  * plain text (any file but .jsonl): the whole text is tokenized once (BOS first when the model adds one)
    and cut into consecutive windows of `seq` tokens; the last, shorter window is padded. Every next-token
    prediction inside a window is scored.
  * JSONL: one {"messages": [{"role": ..., "content": ...}, ...]} per line, rendered with the model's chat
    template as `edgerun chat` renders it (edgerun/chat.py); only the tokens of assistant messages (their text
    and the template's end-of-turn after it) are scored. Each record is one window (cut at `seq`, padded).
    The rendering is split at message boundaries: render(messages[:i]) must be a prefix of
    render(messages[:i+1]) (true of ChatML and the usual templates); a template that is not is an error.
order(epoch, seed): a permutation of the windows from numpy's PCG64 seeded with (seed, epoch) — the same data
order for the same seed on every machine, and a run resumed at (epoch, index) continues it exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "load_data", "order"]


@dataclass
class Dataset:
    tokens: np.ndarray  # int32 [N, S]
    mask: np.ndarray    # uint8 [N, S]
    digest: str         # sha256 of the file's bytes, the seq length and the kind (checked by --resume)
    kind: str           # "text" | "chat"

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def scored(self) -> int:
        return int(self.mask.sum())

    def batch(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(self.tokens[idx]), np.ascontiguousarray(self.mask[idx])


def order(n: int, epoch: int, seed: int) -> np.ndarray:
    return np.random.Generator(np.random.PCG64([int(seed), int(epoch)])).permutation(n)


def _read_text(path: str) -> str:
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not a data file")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _pad_id(model) -> int:
    return model.eos_id if model.eos_id >= 0 else 0


def _windows(ids: list[int], seq: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    n = max(1, -(-(len(ids) - 1) // seq)) if len(ids) > 1 else 0
    toks = np.full((n, seq), pad, dtype=np.int32)
    mask = np.zeros((n, seq), dtype=np.uint8)
    for w in range(n):
        chunk = ids[w * seq:(w + 1) * seq]
        toks[w, :len(chunk)] = chunk
        mask[w, :len(chunk) - 1] = 1  # position t predicts t + 1 inside the window
    return toks, mask


def _text(model, path: str, seq: int) -> tuple[np.ndarray, np.ndarray]:
    text = _read_text(path)
    add_bos = bool(model.metadata("tokenizer.add_bos")) and model.bos_id >= 0
    ids = model.tokenize(text, add_bos=add_bos, special=False)
    if len(ids) < 2:
        raise ValueError(f"{path}: needs at least 2 tokens of text, got {len(ids)}")
    return _windows(ids, seq, _pad_id(model))


def _chat_record(model, template, messages: list, where: str) -> tuple[list[int], list[int]]:
    """(ids, scored) of one conversation: scored[p] = 1 for the tokens of assistant messages."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: \"messages\" must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: every message needs a string \"role\" and \"content\"")
    ids: list[int] = []
    scored: list[int] = []
    done = ""
    for i, m in enumerate(messages):
        parts = []
        if m["role"] == "assistant":  # the prompt up to the reply is context, the reply is scored
            parts.append((template.render(messages[:i], add_generation_prompt=True), 0))
        parts.append((template.render(messages[:i + 1], add_generation_prompt=False), int(m["role"] == "assistant")))
        for text, score in parts:
            if not text.startswith(done):
                raise ValueError(f"{where}: the chat template does not render this conversation message by "
                                 "message (an earlier rendering is not a prefix of a later one); use plain text")
            piece = text[len(done):]
            done = text
            if piece:
                t = model.tokenize(piece, add_bos=False, special=True)
                ids += t
                scored += [score] * len(t)
    return ids, scored


def _chat(model, path: str, seq: int) -> tuple[np.ndarray, np.ndarray]:
    from ..chat import template_for

    template = template_for(model)
    rows = []
    for ln, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{ln}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or "messages" not in rec:
            raise ValueError(f"{where}: expected an object with \"messages\"")
        ids, scored = _chat_record(model, template, rec["messages"], where)
        rows.append((ids[:seq], scored[:seq]))
    if not rows:
        raise ValueError(f"{path}: no records")
    pad = _pad_id(model)
    toks = np.full((len(rows), seq), pad, dtype=np.int32)
    mask = np.zeros((len(rows), seq), dtype=np.uint8)
    for r, (ids, scored) in enumerate(rows):
        toks[r, :len(ids)] = ids
        s = np.asarray(scored, dtype=np.uint8)
        mask[r, :len(ids) - 1] = s[1:]  # position t is scored when its target t + 1 is an assistant token
    if not mask.any():
        raise ValueError(f"{path}: no assistant message to learn from (only assistant tokens are scored)")
    return toks, mask


def load_data(model, path: str | os.PathLike, seq: int) -> Dataset:
    """The windows of a text file, or of a JSONL chat file (by its .jsonl suffix), for `model`'s tokenizer."""
    path = os.fspath(path)
    if seq < 2:
        raise ValueError(f"seq must be at least 2, got {seq}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such data file")
    kind = "chat" if path.lower().endswith(".jsonl") else "text"
    toks, mask = (_chat if kind == "chat" else _text)(model, path, seq)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(f"|seq={seq}|{kind}".encode())
    return Dataset(toks, mask, h.hexdigest()[:16], kind)
