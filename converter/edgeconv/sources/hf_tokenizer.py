"""Hugging Face tokenizer files -> tokenizer.* metadata (docs/FORMAT.md), the way llama.cpp's converter does.

read_hf_tokenizer(folder, config, vocab_size, pre=None) -> dict of tokenizer.* keys, or {} when the folder
has no tokenizer. Sources, in order of preference:
  * tokenizer.json of model type BPE with a ByteLevel pre-tokenizer/decoder -> model "gpt2": tokens in id
    order (padded to vocab_size with "[PAD<i>]" tokens of type 5 = unused), merges "a b" in rank order,
    added special tokens type 3 (control), other added tokens type 4 (user-defined);
  * tokenizer.model (SentencePiece) -> model "llama": pieces, scores and types from sentencepiece;
  * tokenizer.json of model type BPE with byte_fallback (SentencePiece converted to BPE) -> model "llama":
    scores derived from merge ranks (token made by merge r scores -(r+1); characters and bytes 0), no
    merges (an SPM tokenizer merges by score); "<0xXX>" tokens are type 6 (byte).
tokenizer.pre is guessed from the pre-tokenizer ("smollm": Digits + ByteLevel; "llama3"/"qwen2": the
Split regexes; "gpt2": plain ByteLevel; "default" for SentencePiece) unless `pre` overrides it; an
unknown pre-tokenizer is an error that names the override. Special ids come from tokenizer_config.json
(bos/eos/unk/pad token strings), else config.json; -1 when absent. chat_template comes from
tokenizer_config.json or chat_template.jinja.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pre_list(pt: Mapping | None) -> list[Mapping]:
    if not pt:
        return []
    if pt.get("type") == "Sequence":
        return list(pt.get("pretokenizers") or [])
    return [pt]


def guess_pre(tj: Mapping) -> str:
    """llama.cpp's pre-tokenizer name for a tokenizer.json (byte-level BPE)."""
    items = _pre_list(tj.get("pre_tokenizer"))
    types = [p.get("type") for p in items]
    if types == ["Digits", "ByteLevel"] and items[0].get("individual_digits"):
        return "smollm"
    if "Split" in types:
        pat = items[types.index("Split")].get("pattern") or {}
        rx = pat.get("Regex", pat.get("String", ""))
        if r"\p{N}{1,3}" in rx:
            return "llama3"
        if r"\p{N}" in rx and "(?i:'s|'t|'re|'ve|'m|'ll|'d)" in rx:
            return "qwen2"
    if types == ["ByteLevel"] and items[0].get("use_regex", True):
        return "gpt2"
    raise ValueError(f"unknown pre-tokenizer {json.dumps(tj.get('pre_tokenizer'))[:300]}; "
                     "pass --tokenizer-pre NAME (e.g. gpt2, smollm, qwen2, llama3) if you know its llama.cpp name")


def _is_byte_level(tj: Mapping) -> bool:
    if any(p.get("type") == "ByteLevel" for p in _pre_list(tj.get("pre_tokenizer"))):
        return True
    dec = tj.get("decoder") or {}
    decs = dec.get("decoders", [dec]) if dec.get("type") == "Sequence" else [dec]
    return any(d.get("type") == "ByteLevel" for d in decs)


def _token_content(x: Any) -> str | None:
    if isinstance(x, dict):
        return x.get("content")
    return x if isinstance(x, str) else None


def _first_id(x: Any) -> int | None:
    if isinstance(x, list):
        return int(x[0]) if x else None
    return None if x is None else int(x)


def _template_single(pp: Mapping | None) -> list:
    """The `single` template of a TemplateProcessing post-processor (searched inside a Sequence)."""
    if not pp:
        return []
    if pp.get("type") == "Sequence":
        for p in pp.get("processors") or []:
            r = _template_single(p)
            if r:
                return r
        return []
    return list(pp.get("single") or []) if pp.get("type") == "TemplateProcessing" else []


def _chat_template(folder: str, tc: Mapping) -> str | None:
    ct = tc.get("chat_template")
    if isinstance(ct, list):  # [{"name": ..., "template": ...}]
        by_name = {e.get("name"): e.get("template") for e in ct}
        ct = by_name.get("default") or next(iter(by_name.values()), None)
    if ct:
        return ct
    p = os.path.join(folder, "chat_template.jinja")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            return f.read()
    p = os.path.join(folder, "chat_template.json")
    if os.path.exists(p):
        return _load_json(p).get("chat_template")
    return None


def _pad_vocab(tokens: list[str], types: list[int], scores: list[float] | None, vocab_size: int) -> None:
    if len(tokens) > vocab_size:
        raise ValueError(f"tokenizer has {len(tokens)} tokens but the model's vocab_size is {vocab_size}")
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _from_tokenizer_json(tj: Mapping, vocab_size: int) -> tuple[dict, dict[str, int]]:
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError(f"tokenizer.json model type {model.get('type')!r} is not supported (BPE only)")
    vocab: dict[str, int] = dict(model["vocab"])
    added = tj.get("added_tokens") or []
    for a in added:
        vocab[a["content"]] = int(a["id"])
    n = max(vocab.values()) + 1 if vocab else 0
    by_id: dict[int, str] = {}
    for tok, i in vocab.items():
        by_id[i] = tok
    holes = [i for i in range(n) if i not in by_id]
    if holes:
        raise ValueError(f"tokenizer.json: ids {holes[:5]} have no token")
    tokens = [by_id[i] for i in range(n)]
    special = {int(a["id"]) for a in added if a.get("special")}
    user = {int(a["id"]) for a in added if not a.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    byte_level = _is_byte_level(tj)
    unk = model.get("unk_token")
    types = []
    for i, t in enumerate(tokens):
        if unk is not None and t == unk:
            types.append(UNKNOWN)
        elif i in special:
            types.append(CONTROL)
        elif i in user:
            types.append(USER_DEFINED)
        elif not byte_level and _BYTE_TOKEN.match(t):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    out: dict[str, Any] = {}
    if byte_level:
        out["tokenizer.model"] = "gpt2"
        out["tokenizer.merges"] = merges
        scores = None
    elif model.get("byte_fallback"):
        out["tokenizer.model"] = "llama"
        rank = {}
        for r, m in enumerate(merges):
            rank.setdefault(m.replace(" ", ""), r)
        scores = []
        for i, t in enumerate(tokens):
            if t in rank:
                scores.append(-float(rank[t] + 1))
            elif len(t) == 1 or types[i] != NORMAL:
                scores.append(0.0)
            else:  # a multi-character piece no merge produces: never a merge target
                scores.append(-1e9)
    else:
        raise ValueError("tokenizer.json is BPE but neither byte-level nor byte_fallback (SentencePiece-style); "
                         "not supported")
    _pad_vocab(tokens, types, scores, vocab_size)
    out["tokenizer.tokens"] = tokens
    out["tokenizer.token_type"] = types
    if scores is not None:
        out["tokenizer.scores"] = scores
    out["tokenizer.unk_id"] = vocab.get(unk, -1) if unk is not None else -1
    return out, vocab


def _from_sentencepiece(path: str, vocab_size: int) -> tuple[dict, dict[str, int]]:
    try:
        import sentencepiece
    except ImportError:
        raise RuntimeError("reading tokenizer.model needs the sentencepiece package: pip install sentencepiece")
    sp = sentencepiece.SentencePieceProcessor()
    sp.LoadFromFile(path)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i))
        scores.append(float(sp.GetScore(i)))
        if sp.IsUnknown(i):
            types.append(UNKNOWN)
        elif sp.IsControl(i):
            types.append(CONTROL)
        elif sp.IsUnused(i):
            types.append(UNUSED)
        elif sp.IsByte(i):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    vocab = {t: i for i, t in enumerate(tokens)}
    added_path = os.path.join(os.path.dirname(path), "added_tokens.json")
    if os.path.exists(added_path):
        for t, i in sorted(_load_json(added_path).items(), key=lambda kv: kv[1]):
            if i == len(tokens):
                tokens.append(t), scores.append(-1000.0), types.append(USER_DEFINED)
                vocab[t] = i
    _pad_vocab(tokens, types, scores, vocab_size)
    return {"tokenizer.model": "llama", "tokenizer.tokens": tokens, "tokenizer.scores": scores,
            "tokenizer.token_type": types, "tokenizer.unk_id": sp.unk_id()}, vocab


def read_hf_tokenizer(folder: str, config: Mapping, vocab_size: int, pre: str | None = None) -> dict:
    tj_path = os.path.join(folder, "tokenizer.json")
    sp_path = os.path.join(folder, "tokenizer.model")
    tc_path = os.path.join(folder, "tokenizer_config.json")
    tc = _load_json(tc_path) if os.path.exists(tc_path) else {}
    tj = _load_json(tj_path) if os.path.exists(tj_path) else None

    if tj is not None and _is_byte_level(tj):
        out, vocab = _from_tokenizer_json(tj, vocab_size)
        out["tokenizer.pre"] = pre or guess_pre(tj)
    elif os.path.exists(sp_path):
        out, vocab = _from_sentencepiece(sp_path, vocab_size)
        out["tokenizer.pre"] = pre or "default"
    elif tj is not None:
        out, vocab = _from_tokenizer_json(tj, vocab_size)
        out["tokenizer.pre"] = pre or "default"
    else:
        return {}

    def tok_id(field: str, cfg_key: str) -> int:
        content = _token_content(tc.get(field))
        if content is not None and content in vocab:
            return vocab[content]
        i = _first_id(config.get(cfg_key))
        return -1 if i is None else i

    out["tokenizer.bos_id"] = tok_id("bos_token", "bos_token_id")
    out["tokenizer.eos_id"] = tok_id("eos_token", "eos_token_id")
    unk = tok_id("unk_token", "unk_token_id")
    if unk >= 0:
        out["tokenizer.unk_id"] = unk
    out["tokenizer.pad_id"] = tok_id("pad_token", "pad_token_id")

    add_bos = tc.get("add_bos_token")
    if add_bos is None and tj is not None and out["tokenizer.bos_id"] >= 0:
        single = _template_single(tj.get("post_processor"))
        bos_tok = out["tokenizer.tokens"][out["tokenizer.bos_id"]]
        add_bos = any((e.get("SpecialToken") or {}).get("id") == bos_tok for e in single)
        if not single:
            add_bos = out["tokenizer.model"] == "llama"
    if add_bos is None:
        add_bos = out["tokenizer.model"] == "llama"
    out["tokenizer.add_bos"] = int(bool(add_bos))
    ct = _chat_template(folder, tc)
    if ct:
        out["tokenizer.chat_template"] = ct
    return out
