"""Request bodies of /v1/chat/completions and /v1/completions, validated into generation settings.

Accepted: model, messages | prompt, max_tokens (max_completion_tokens), temperature, top_p, seed, stop,
stream, n (1 only), user, logprobs (chat: logprobs + top_logprobs; completions: logprobs = k), and
ignored-when-neutral fields (presence/frequency_penalty 0).
Sampling defaults are edgerun's (= llama.cpp's: temperature 0.8, top_p 0.95, top_k 40, min_p 0.05), so a
request with the same settings matches `edgerun generate`.
"""

from __future__ import annotations

import json
import secrets

from .errors import APIError

DEFAULT_MAX_TOKENS = 256


def parse_json(body: bytes) -> dict:
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(obj, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return obj


def _number(obj, key, lo, hi, default, integer=False):
    v = obj.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise APIError(400, f"'{key}' must be {'an integer' if integer else 'a number'}, got {v!r}", param=key,
                       code="invalid_type")
    if not lo <= v <= hi:
        raise APIError(400, f"'{key}' must be in [{lo}, {hi}], got {v}", param=key, code="invalid_value")
    return v


def sampling(obj: dict) -> tuple[int, dict, list[str], bool]:
    """-> (max_tokens, Model.generate sampling kwargs, stop strings, stream)."""
    n = _number(obj, "n", 1, 1 << 30, 1, integer=True)
    if n != 1:
        raise APIError(400, "only n=1 is supported", param="n", code="invalid_value")
    key = "max_completion_tokens" if obj.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(obj, key, 0, 1 << 30, DEFAULT_MAX_TOKENS, integer=True)
    for k in ("presence_penalty", "frequency_penalty"):
        if _number(obj, k, -2.0, 2.0, 0.0) != 0.0:
            raise APIError(400, f"'{k}' is not supported (only 0)", param=k, code="unsupported_parameter")
    seed = obj.get("seed")
    if seed is None:
        seed = secrets.randbits(31)
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise APIError(400, f"'seed' must be an integer, got {seed!r}", param="seed", code="invalid_type")
    kw = dict(temperature=float(_number(obj, "temperature", 0.0, 2.0, 0.8)),
              top_p=float(_number(obj, "top_p", 0.0, 1.0, 0.95)),
              top_k=_number(obj, "top_k", 0, 1 << 20, 40, integer=True),
              min_p=float(_number(obj, "min_p", 0.0, 1.0, 0.05)),
              seed=seed & 0xFFFFFFFFFFFFFFFF)
    stop = obj.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise APIError(400, "'stop' must be a string or a list of at most 4 strings", param="stop", code="invalid_value")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, "'stream' must be a boolean", param="stream", code="invalid_type")
    return max_tokens, kw, stops, stream


MAX_TOP_LOGPROBS = 20


def logprobs(obj: dict, chat: bool) -> int | None:
    """None: no logprobs; k >= 0: each token's logprob and its k most likely alternatives.
    Chat: logprobs (bool) + top_logprobs (0..20, needs logprobs); completions: logprobs = k (0..20) or null."""
    if chat:
        on = obj.get("logprobs")
        if on is not None and not isinstance(on, bool):
            raise APIError(400, f"'logprobs' must be a boolean, got {on!r}", param="logprobs", code="invalid_type")
        top = _number(obj, "top_logprobs", 0, MAX_TOP_LOGPROBS, None, integer=True)
        if top is not None and not on:
            raise APIError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs", code="invalid_value")
        return (top or 0) if on else None
    if obj.get("logprobs") is False:
        return None
    return _number(obj, "logprobs", 0, MAX_TOP_LOGPROBS, None, integer=True)


def messages(obj: dict) -> list[dict]:
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise APIError(400, "'messages' must be a non-empty list", param="messages", code="invalid_value")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise APIError(400, f"messages[{i}] needs a role of system, user or assistant", param=f"messages[{i}]",
                           code="invalid_value")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise APIError(400, f"messages[{i}]: only text content parts are supported",
                               param=f"messages[{i}].content", code="unsupported_parameter")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise APIError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content",
                           code="invalid_type")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def prompt(obj: dict) -> str | list[int]:
    p = obj.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if isinstance(p, str):
        if not p:
            raise APIError(400, "'prompt' is empty", param="prompt", code="invalid_value")
        return p
    if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
        return p
    raise APIError(400, "'prompt' must be a string or a list of token ids (one prompt: n=1)", param="prompt",
                   code="invalid_value")
