"""One request's generation on a slot, run in a worker thread (the C++ eval releases the GIL), streamed
to the event loop as events on an asyncio.Queue.

Events: ("text", str) pieces, with stop strings cut out (a piece is held back while it could still be
the start of a stop string); then ("done", Result). A set `cancel` event (client gone, server draining)
ends the loop at the next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field


@dataclass(eq=False)  # hashed by identity (the server's set of live jobs)
class Job:
    ids: list[int]                     # the prompt, tokenized
    max_tokens: int
    sampling: dict                     # Model.generate keyword arguments (temperature, top_p, seed, ...)
    stop_ids: set[int]
    stop: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


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


def run(model, job: Job, cached_tokens: int, emit) -> Result:
    """Generate on `model` (in the calling thread); emit(kind, value) is thread-safe. Returns the Result."""
    t0 = time.perf_counter()
    ttft = None
    toks: list[int] = []
    matcher = StopMatcher(job.stop)
    reason = "length"
    try:
        for piece in model.generate(job.ids, job.max_tokens, stop_ids=job.stop_ids, tokens_out=toks, **job.sampling):
            if ttft is None:
                ttft = time.perf_counter() - t0
            text, stopped = matcher.feed(piece)
            if text:
                emit("text", text)
            if stopped:
                reason = "stop"
                break
            if job.cancel.is_set():
                reason = "cancelled"
                break
        else:
            tail = matcher.flush()
            if tail:
                emit("text", tail)
            if toks and toks[-1] in job.stop_ids:
                reason = "stop"
    except Exception as e:  # noqa: BLE001 - reported to the client as a 500
        return Result("error", len(job.ids), len(toks), cached_tokens, ttft or 0.0, time.perf_counter() - t0, str(e))
    n = len(toks) - (1 if reason == "stop" and toks and toks[-1] in job.stop_ids else 0)
    return Result(reason, len(job.ids), n, cached_tokens, ttft if ttft is not None else time.perf_counter() - t0,
                  time.perf_counter() - t0)


def start(loop: asyncio.AbstractEventLoop, executor, model, job: Job, cached_tokens: int):
    """Run `job` in `executor`; returns (queue of events, future of the Result)."""
    q: asyncio.Queue = asyncio.Queue()

    def emit(kind, value):
        loop.call_soon_threadsafe(q.put_nowait, (kind, value))

    def work():
        res = run(model, job, cached_tokens, emit)
        emit("done", res)
        return res

    return q, loop.run_in_executor(executor, work)
