"""The memory plan of N slots (sessions) under one --mem budget, made before the server listens.

The slots are N KV sequences of ONE edgerun.Model (n_seq = N: the scheduler batches their decode steps,
scheduler.py): one mapping of the weights, one scratch (sized for a step of `batch` tokens), one expert
cache for a MoE model, and N KV caches of ctx positions each, all planned by the C++ planner at once.

    budget >= process (this interpreter's resident set + margin, measured once)
              + weights (the mapped non-expert tensors)
              + N x (KV cache + host state) (per slot)
              + shared (scratch, activations, I/O buffers, and for MoE the expert cache: the rest)

A probe model (one sequence) planned with mem_scope="process" and the whole budget measures `process`,
`weights` and one slot's KV cache. A slot's host state is what its request keeps in this process at a
full context: its two token lists (cached tokens, sampling history: a pointer each per token, at least)
and its row of a step's logits (vocab floats). For a dense model the arithmetic is checked before loading (the
refusal names every term), then the model is planned with mem = budget - process - N x host state (its own memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import MemoryBudgetError, Model
from ..sizes import format_size
from .scheduler import PREFILL_CHUNK
from .slots import SlotSequence

PRIVATE_TERMS = ("kv_cache", "scratch", "activations", "adapters", "io_buffers", "expert_cache")
SHARED_TERMS = ("scratch", "activations", "adapters", "io_buffers", "expert_cache")  # one model: counted once


@dataclass
class SlotPlan:
    parallel: int
    budget: int | None          # bytes, None = no budget
    process: int                # bytes counted for the interpreter (0 without a budget)
    weights: int                # mapped weights, counted once
    private: list[int]          # per slot: its KV cache + host state
    shared: int = 0             # one scratch (+ activations, I/O buffers, expert cache) for all slots

    @property
    def total(self) -> int:
        return self.process + self.weights + sum(self.private) + self.shared

    def as_dict(self) -> dict:
        return {"parallel": self.parallel, "budget": self.budget, "process": self.process, "weights": self.weights,
                "private_per_slot": self.private, "shared": self.shared, "total": self.total}

    def describe(self) -> str:
        per = format_size(max(self.private)) if self.private else "0"
        text = (f"{self.parallel} slot(s) x {per} (KV cache + host state) + scratch {format_size(self.shared)} (shared, batched "
                f"steps) + weights {format_size(self.weights)} + process {format_size(self.process)} = "
                f"{format_size(self.total)}")
        return text + (f" of --mem {format_size(self.budget)}" if self.budget else " (no --mem budget)")


def private_bytes(plan: dict) -> int:
    return sum(int(plan.get(k, 0)) for k in PRIVATE_TERMS)


def host_bytes(ctx: int, vocab: int) -> int:
    """One slot's host state at a full context: 2 token lists x ctx x 8-byte pointers + a logits row."""
    return 2 * ctx * 8 + vocab * 4


def shared_bytes(plan: dict) -> int:
    return sum(int(plan.get(k, 0)) for k in SHARED_TERMS)


def fitted_ctx(path: str, parallel: int, mem: int, threads: int | None, **model_kw) -> int | None:
    """--mem without --ctx: the longest context (a multiple of 64) at which `parallel` slots fit, or None (a MoE
    model, or not even one K tile fits: the default context and the checks of load_slots decide). The C++
    planner picks the longest context for all `parallel` KV sequences (Model.ctx_from_budget) without the slots'
    host state (host_bytes, not in the C++ plan); the context is then shortened by whole 64-position steps until
    the planner's own bytes at that context (the model's plan, KV caches of every --kv form — a KIVI cache is a
    fixed f16 ring plus blocks per 32 positions, not bytes x positions — and scratch alike) plus the process and
    the host state fit. The first step is estimated from the plan at two contexts, then each candidate is
    planned, so the answer is the planner's, not a linear guess."""
    sized = Model(path, threads=threads, mem=mem, mem_scope="process", n_seq=parallel, **model_kw)
    if not sized.ctx_from_budget:
        return None
    ctx, vocab, process = sized.ctx, sized.vocab_size, int(sized.memory_plan["process"])
    del sized

    def need(n: int) -> int:  # the whole budget's use at context n (load_slots' final model + host state)
        m = Model(path, threads=threads, ctx=n, n_seq=parallel, **model_kw)
        total = int(m.memory_plan["total"])
        del m
        return process + total + parallel * host_bytes(n, vocab)

    n = max(64, ctx // 64 * 64)
    hi = need(n)
    if hi > mem and n > 64:  # one estimated jump: the bytes per position between two planned contexts
        lo_n = max(64, n - 256)
        per_pos = max(1, (hi - need(lo_n)) // max(1, n - lo_n)) if lo_n < n else 1
        drop = -(-(hi - mem) // per_pos)
        n = max(64, n - (drop + 63) // 64 * 64)
        hi = need(n)
    while hi > mem and n > 64:
        n -= 64
        hi = need(n)
    while n + 64 <= ctx and need(n + 64) <= mem:  # the estimate over-shot (a KIVI cache's ring is fixed)
        n += 64
    return n


def load_slots(path: str, parallel: int, mem: int | None, ctx: int | None, threads: int | None,
               **model_kw) -> tuple[list[SlotSequence], SlotPlan]:
    """Plan and load one model of `parallel` KV sequences; -> (the slots' sequences, the plan). Raises
    MemoryBudgetError with the arithmetic if they cannot fit."""
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")
    # a step holds every slot's decode token and a prompt chunk (scheduler.py): the scratch is sized for it
    model_kw.setdefault("batch", max(128, parallel + PREFILL_CHUNK))
    process = 0
    if mem and ctx is None:
        ctx = fitted_ctx(path, parallel, mem, threads, **model_kw)
    if mem:
        probe = Model(path, threads=threads, ctx=ctx, mem=mem, mem_scope="process", **model_kw)
        pp = probe.memory_plan
        process, weights, kv_one, shared = int(pp["process"]), int(pp["resident"]), int(pp["kv_cache"]), shared_bytes(pp)
        host = host_bytes(probe.ctx, probe.vocab_size)
        if not probe.is_moe:  # a dense model's terms are fixed: the arithmetic can be checked exactly
            need = process + weights + parallel * (kv_one + host) + shared
            if need > mem:
                raise MemoryBudgetError(
                    f"--parallel {parallel} needs {format_size(need)}: {parallel} x {format_size(kv_one + host)} (KV "
                    f"cache for {probe.ctx} tokens + host state per slot) + scratch {format_size(shared)} (shared) + weights "
                    f"{format_size(weights)} + process {format_size(process)}, but --mem is {format_size(mem)}; use "
                    f"fewer --parallel slots, a shorter --ctx or a larger --mem")
        del probe
        if mem - process - parallel * host <= weights:
            raise MemoryBudgetError(f"--mem {format_size(mem)} leaves nothing for the model after the process "
                                    f"({format_size(process)}) and {parallel} slots' host state ({format_size(host)} each)")
        try:
            model = Model(path, threads=threads, ctx=ctx, mem=mem - process - parallel * host, mem_scope="model",
                          n_seq=parallel, **model_kw)
        except MemoryBudgetError as e:
            raise MemoryBudgetError(f"--parallel {parallel} does not fit --mem {format_size(mem)} beside the process "
                                    f"({format_size(process)}): {e}") from e
    else:
        model = Model(path, threads=threads, ctx=ctx, n_seq=parallel, **model_kw)
    mp = model.memory_plan
    per_slot = int(mp["kv_cache"]) // parallel + host_bytes(model.ctx, model.vocab_size)
    plan = SlotPlan(parallel, mem or None, process, int(mp["resident"]), [per_slot] * parallel, shared_bytes(mp))
    return [SlotSequence(model, i) for i in range(parallel)], plan
