"""One request's generation: what it asks (Job), how it ended (Result) and the stop-string matcher. The
scheduler (scheduler.py) runs it and streams events to the event loop on an asyncio.Queue: ("text", str)
pieces with stop strings cut out (a piece is held back while it could still be the start of a stop
string), ("logprobs", [entries]) before the text they belong to, then ("done", Result). A set `cancel`
event (client gone, server draining) ends it at the next step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(eq=False)  # hashed by identity (the server's set of live jobs)
class Job:
    ids: list[int]                     # the prompt, tokenized
    max_tokens: int
    sampling: dict                     # Model.generate keyword arguments (temperature, top_p, seed, ...)
    stop_ids: set[int]
    stop: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    logprobs: int | None = None        # None: off; k >= 0: the sampled token's logprob and the k most likely


@dataclass
class Result:
    finish_reason: str                 # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int                 # prompt tokens reused from the slot's KV cache
    ttft_s: float                      # time to the first generated token
    seconds: float
    error: str | None = None


class StopMatcher:
    """Cuts the text at the first stop string; holds back a tail that may be a stop string's beginning."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.buf = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """-> (text safe to emit, stopped)."""
        self.buf += piece
        hits = [i for i in (self.buf.find(s) for s in self.stop) if i >= 0]
        if hits:
            out, self.buf = self.buf[:min(hits)], ""
            return out, True
        cut = max(0, len(self.buf) - self.hold) if self.hold else len(self.buf)
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out
