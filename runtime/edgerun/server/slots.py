"""Slots: N sessions, each a KV sequence of the one multi-sequence edgerun.Model (plan.py), handed to
requests one at a time (the scheduler, scheduler.py, steps all busy slots together).

All bookkeeping runs on the event loop's thread (no locks): acquire() gives a free slot at once, or waits
in a bounded FIFO queue, or raises QueueFull when the queue is full. Among the free slots it picks the one
whose cached tokens share the longest prefix with the new prompt (the prompt cache: Model.generate then
evaluates only the rest). release() hands the slot to the oldest waiter.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from ..model import Model


@dataclass(eq=False)
class SlotSequence:
    """One slot's KV sequence `seq` in the shared model, and the tokens cached in it, in order."""
    model: Model
    seq: int
    _cached: list[int] = field(default_factory=list)


class QueueFull(Exception):
    pass


def shared_prefix(cached: list[int], ids: list[int]) -> int:
    """Tokens Model.generate will reuse: the common prefix, leaving at least one token to evaluate."""
    n, limit = 0, min(len(cached), len(ids) - 1)
    while n < limit and cached[n] == ids[n]:
        n += 1
    return n


@dataclass
class Slot:
    index: int
    seq: SlotSequence
    busy: bool = False
    requests: int = 0

    @property
    def cached(self) -> list[int]:
        return self.seq._cached


@dataclass
class SlotPool:
    slots: list[Slot]
    max_queue: int
    _waiters: collections.deque = field(default_factory=collections.deque)

    @classmethod
    def of(cls, seqs: list[SlotSequence], max_queue: int) -> "SlotPool":
        return cls([Slot(i, s) for i, s in enumerate(seqs)], max_queue)

    @property
    def busy(self) -> int:
        return sum(s.busy for s in self.slots)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _best_free(self, ids: list[int]) -> Slot | None:
        free = [s for s in self.slots if not s.busy]
        return max(free, key=lambda s: shared_prefix(s.cached, ids)) if free else None

    async def acquire(self, ids: list[int]) -> Slot:
        slot = self._best_free(ids) if not self._waiters else None
        if slot is None:
            if len(self._waiters) >= self.max_queue:
                raise QueueFull(f"all {len(self.slots)} slots are busy and {self.queued} requests are waiting")
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append((fut, ids))
            try:
                slot = await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():  # a slot was handed over as we were cancelled
                    self.release(fut.result())
                else:
                    self._waiters.remove((fut, ids))
                raise
        slot.busy = True
        slot.requests += 1
        return slot

    def release(self, slot: Slot) -> None:
        slot.busy = False
        while self._waiters:
            fut, ids = self._waiters.popleft()
            if not fut.done():
                slot.busy = True  # reserved for this waiter until it resumes
                fut.set_result(slot)
                return
