"""OpenAI's logprobs shapes from the scheduler's per-token entries {"id", "logprob", "top": [(id, logprob)]}
(scheduler.token_logprobs: log-softmax of the raw logits, before temperature and truncation).

Chat:        {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}],
              "refusal": None}
Completions: {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob}], "text_offset": [...]}
A token's text is its bytes decoded as UTF-8 with replacement (a token may hold part of a character;
"bytes" has the exact ones). Tokens whose text a stop string cut off are not listed.
"""

from __future__ import annotations


def _bytes(model, tok: int) -> bytes:
    return model._m.token_bytes(tok, False)


def _text(model, tok: int) -> str:
    return _bytes(model, tok).decode("utf-8", errors="replace")


def chat_logprobs(model, entries: list[dict]) -> dict:
    def one(tok, lp):
        return {"token": _text(model, tok), "logprob": lp, "bytes": list(_bytes(model, tok))}
    return {"content": [dict(one(e["id"], e["logprob"]), top_logprobs=[one(t, lp) for t, lp in e["top"]])
                        for e in entries], "refusal": None}


def completion_logprobs(model, entries: list[dict], offset: int = 0) -> dict:
    tokens, offsets = [], []
    for e in entries:
        offsets.append(offset)
        tokens.append(_text(model, e["id"]))
        offset += len(tokens[-1])
    return {"tokens": tokens, "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{_text(model, t): lp for t, lp in e["top"]} for e in entries], "text_offset": offsets}
