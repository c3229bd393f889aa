"""The batching scheduler: one thread steps every active slot of one multi-sequence Model at once.

Each step gathers the next token of every slot that is decoding (one token per slot, at that slot's
own position) and, while slots are still reading their prompts, at most `prefill_chunk` prompt tokens
(beside decoding slots; `batch` when none decodes) taken from the reading slots oldest first, so several
short prompts are read in one step; they run as ONE Model.eval_batch (csrc/model.h: the matmuls take
all the columns at once, attention reads each slot's own KV sequence). A long prompt is read across
several steps while the other slots keep decoding, so their time per token grows by one chunk's cost,
not by the whole prompt, and the time to a new request's first token is bounded by the prompts ahead.

Per slot, sampling is Model.generate's (the same sampler, history and stop rules), so a seeded request
gives the text `edgerun generate` gives: its logits are a single-sequence eval's (eval_batch's contract).

Threads: submit() runs on the event loop; the loop runs in a one-thread executor while there is work
(eval_batch releases the GIL) and ends when there is none; events go back to the request through
loop.call_soon_threadsafe, in order: ("logprobs", [entries]) before the ("text", str) they belong to,
then ("done", Result) with the Result also set on the job's future.
"""

from __future__ import annotations

import asyncio
import codecs
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..model import SamplingParams
from .generation import Job, Result, StopMatcher
from .slots import shared_prefix

PREFILL_CHUNK = 32  # prompt tokens per step beside the decoding slots (bounds the others' time per token)


def token_logprobs(logits: np.ndarray, tok: int, top: int) -> dict:
    """log-softmax of the raw logits (before temperature / top-k): the chosen token's and the `top` best."""
    x = logits.astype(np.float64)
    m = x.max()
    lse = m + np.log(np.exp(x - m).sum())
    entry = {"id": tok, "logprob": float(x[tok] - lse), "top": []}
    if top > 0:
        best = np.argpartition(-x, top - 1)[:top]
        best = best[np.argsort(-x[best], kind="stable")]
        entry["top"] = [(int(i), float(x[i] - lse)) for i in best]
    return entry


@dataclass(eq=False)
class Active:
    """One request on its slot: the prompt still to read, then one sampled token per step."""
    job: Job
    seq: int                         # the slot's KV sequence in the model
    cached_list: list                # the slot's cached tokens (kept equal to its KV sequence)
    cached_tokens: int               # prompt tokens reused from the cache
    emit: object                     # emit(kind, value), thread-safe
    done: object                     # done(Result), thread-safe
    feed: list                       # prompt tokens not evaluated yet
    sampler: object
    history: list
    t0: float = field(default_factory=time.perf_counter)
    ttft: float | None = None
    next: int = -1                   # the sampled token to evaluate next (decoding)
    toks: list = field(default_factory=list)
    decoder: object = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))
    matcher: StopMatcher | None = None
    pending_lp: list = field(default_factory=list)


class Scheduler:
    def __init__(self, model, prefill_chunk: int = PREFILL_CHUNK):
        self.model = model
        self.prefill_chunk = max(1, prefill_chunk)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgerun-batch")
        self._lock = threading.Lock()
        self._new: list[Active] = []
        self._active: list[Active] = []
        self._running = False
        # statistics (GET /metrics)
        self.steps = 0
        self.step_tokens = 0          # tokens over all steps
        self.decode_tokens = 0        # of which decode tokens (one per decoding slot and step)
        self.last_step_size = 0       # tokens in the latest step
        self.last_decode_batch = 0    # decoding slots in the latest step
        self.max_decode_batch = 0
        self.max_prompt_readers = 0   # slots whose prompts were read in one step

    @property
    def active(self) -> int:
        return len(self._active) + len(self._new)

    # ---- the event loop's side ---------------------------------------------------------------------
    def submit(self, loop: asyncio.AbstractEventLoop, slot_seq, job: Job):
        """Start `job` on the slot sequence `slot_seq` (model, seq, _cached); -> (event queue, future of the Result)."""
        q: asyncio.Queue = asyncio.Queue()
        fut = loop.create_future()

        def emit(kind, value):
            loop.call_soon_threadsafe(q.put_nowait, (kind, value))

        def done(res):
            def finish():
                q.put_nowait(("done", res))
                if not fut.done():
                    fut.set_result(res)
            loop.call_soon_threadsafe(finish)

        # 0 where a sliding-window ring no longer holds the prefix's last window (Model.keepable)
        cached = self.model.seq_keepable(slot_seq.seq, shared_prefix(slot_seq._cached, job.ids))
        s = job.sampling
        sampler = SamplingParams(s.get("temperature", 0.8), s.get("top_k", 40), s.get("top_p", 0.95),
                                 s.get("min_p", 0.05), s.get("repeat_penalty", 1.0), 64, s.get("seed", 0)).make()
        a = Active(job, slot_seq.seq, slot_seq._cached, cached, emit, done, [], sampler, list(job.ids),
                   matcher=StopMatcher(job.stop))
        with self._lock:
            self._new.append(a)
            if not self._running:
                self._running = True
                self.executor.submit(self._loop)
        return q, fut

    def shutdown(self, wait: bool = True) -> None:
        for a in list(self._active) + list(self._new):
            a.job.cancel.set()
        self.executor.shutdown(wait=wait)

    # ---- the scheduler thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._lock:
                for a in self._new:
                    self._start(a)
                self._new.clear()
                if not self._active:
                    self._running = False
                    return
            try:
                self._step()
            except Exception as e:  # noqa: BLE001 - a failed step fails its requests, not the server
                for a in list(self._active):
                    self._finish(a, "error", error=f"{type(e).__name__}: {e}")

    def _start(self, a: Active) -> None:
        m = self.model
        n = a.cached_tokens
        m.seq_truncate(a.seq, n)
        del a.cached_list[n:]
        if a.job.max_tokens <= 0:  # as Model.generate: nothing evaluated
            self._finish(a, "length", track=False)
            return
        a.feed = list(a.job.ids[n:])
        self._active.append(a)

    def _finish(self, a: Active, reason: str, error: str | None = None, track: bool = True) -> None:
        if track and a in self._active:
            self._active.remove(a)
        now = time.perf_counter()
        if error is not None:  # the slot's cache is in an unknown state: forget it
            self.model.seq_truncate(a.seq, 0)
            a.cached_list.clear()
            a.done(Result("error", len(a.job.ids), len(a.toks), a.cached_tokens, a.ttft or 0.0, now - a.t0, error))
            return
        if reason in ("length", "eos"):  # generation ended by itself: the held-back text goes out
            tail = a.decoder.decode(b"", final=True)
            text, stopped = a.matcher.feed(tail) if tail else ("", False)
            if stopped:
                reason = "stop"
                a.pending_lp.clear()
            else:
                text += a.matcher.flush()
            self._emit_text(a, text)
            if reason == "eos":
                reason = "stop"
        n = len(a.toks) - (1 if a.toks and a.toks[-1] in a.job.stop_ids else 0)
        a.done(Result(reason, len(a.job.ids), n, a.cached_tokens, a.ttft if a.ttft is not None else now - a.t0,
                      now - a.t0))

    def _emit_text(self, a: Active, text: str) -> None:
        if a.pending_lp and text:
            a.emit("logprobs", a.pending_lp)
            a.pending_lp = []
        if text:
            a.emit("text", text)

    def _step(self) -> None:
        m = self.model
        for a in [a for a in self._active if a.job.cancel.is_set()]:
            self._finish(a, "cancelled")
        decoding = [a for a in self._active if not a.feed]
        for a in [a for a in decoding if m.seq_n_past(a.seq) + 1 > m.ctx]:  # its context is full
            self._finish(a, "length")
            decoding.remove(a)
        seqs, toks, owners = [], [], []
        for a in decoding:
            seqs.append(a.seq)
            toks.append(a.next)
            owners.append((a, [a.next]))
        # beside decoding slots a prompt goes in chunks (their time per token stays bounded); alone, whole batches
        room = min(self.prefill_chunk, m.batch - len(decoding)) if decoding else m.batch
        readers = 0
        for reader in (a for a in self._active if a.feed):  # oldest first
            if room <= 0:
                break
            part = reader.feed[:room]
            seqs += [reader.seq] * len(part)
            toks += part
            owners.append((reader, part))
            room -= len(part)
            readers += 1
        if not owners:
            return
        logits = m.eval_batch(seqs, toks)
        self.steps += 1
        self.step_tokens += len(toks)
        self.decode_tokens += len(decoding)
        self.last_step_size, self.last_decode_batch = len(toks), len(decoding)
        self.max_decode_batch = max(self.max_decode_batch, len(decoding))
        self.max_prompt_readers = max(self.max_prompt_readers, readers)
        for row, (a, part) in zip(logits, owners):
            a.cached_list.extend(part)
            if a.feed:
                del a.feed[:len(part)]
                if a.feed:  # more of the prompt next step
                    continue
            self._sampled(a, row)

    def _sampled(self, a: Active, row: np.ndarray) -> None:
        job = a.job
        tok = int(a.sampler.sample(row, a.history))
        if a.ttft is None:
            a.ttft = time.perf_counter() - a.t0
        a.toks.append(tok)
        a.history.append(tok)
        a.next = tok
        if tok in job.stop_ids:
            self._finish(a, "eos")
            return
        if job.logprobs is not None:
            a.pending_lp.append(token_logprobs(row, tok, job.logprobs))
        piece = a.decoder.decode(self.model._m.token_bytes(tok, False))
        if piece:
            text, stopped = a.matcher.feed(piece)
            self._emit_text(a, text)
            if stopped:
                self._finish(a, "stop")
                return
        if len(a.toks) >= job.max_tokens:
            self._finish(a, "length")
