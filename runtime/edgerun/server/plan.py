"""The memory plan of N slots (sessions) under one --mem budget, made before the server listens.

Every slot is its own edgerun.Model (its own KV cache, scratch, and for MoE its own expert cache) over
the same .edge file. The weights are a read-only file mapping: N mappings of one file share the same
page-cache pages, so physical memory (and a cgroup's charge) holds them once; they are counted once.
(VmRSS adds each mapping's resident pages, so it over-reports N > 1 — PSS / the cgroup are the truth.)

    budget >= process (this interpreter's resident set + margin, measured once)
              + weights (the mapped non-expert tensors, once)
              + N x private (each slot's KV cache + scratch + activations + I/O buffers + expert cache)

A probe model planned with mem_scope="process" and the whole budget measures `process` and `weights`
and proves one slot fits; each slot is then planned with mem = weights + share, share = what is left / N,
so a dense slot gets exactly its KV + scratch and a MoE slot an expert cache that fills its share.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import MemoryBudgetError, Model
from ..sizes import format_size

PRIVATE_TERMS = ("kv_cache", "scratch", "activations", "adapters", "io_buffers", "expert_cache")


@dataclass
class SlotPlan:
    parallel: int
    budget: int | None          # bytes, None = no budget
    process: int                # bytes counted for the interpreter (0 without a budget)
    weights: int                # mapped weights, counted once
    private: list[int]          # per slot

    @property
    def total(self) -> int:
        return self.process + self.weights + sum(self.private)

    def as_dict(self) -> dict:
        return {"parallel": self.parallel, "budget": self.budget, "process": self.process, "weights": self.weights,
                "private_per_slot": self.private, "total": self.total}

    def describe(self) -> str:
        per = format_size(max(self.private)) if self.private else "0"
        text = (f"{self.parallel} slot(s) x {per} (KV cache + scratch) + weights {format_size(self.weights)} "
                f"(one shared mapping) + process {format_size(self.process)} = {format_size(self.total)}")
        return text + (f" of --mem {format_size(self.budget)}" if self.budget else " (no --mem budget)")


def private_bytes(plan: dict) -> int:
    return sum(int(plan.get(k, 0)) for k in PRIVATE_TERMS)


def load_slots(path: str, parallel: int, mem: int | None, ctx: int | None, threads: int | None,
               **model_kw) -> tuple[list[Model], SlotPlan]:
    """Plan and load `parallel` models of `path`; raises MemoryBudgetError with the arithmetic if they cannot fit."""
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")
    if not mem:
        models = [Model(path, threads=threads, ctx=ctx, **model_kw) for _ in range(parallel)]
        p0 = models[0].memory_plan
        return models, SlotPlan(parallel, None, 0, int(p0["resident"]), [private_bytes(m.memory_plan) for m in models])
    probe = Model(path, threads=threads, ctx=ctx, mem=mem, mem_scope="process", **model_kw)
    pp = probe.memory_plan
    process, weights, one = int(pp["process"]), int(pp["resident"]), private_bytes(pp)
    if not probe.is_moe:  # a dense slot's private memory is fixed: the arithmetic can be checked exactly
        need = process + weights + parallel * one
        if need > mem:
            raise MemoryBudgetError(
                f"--parallel {parallel} needs {format_size(need)}: {parallel} x {format_size(one)} (KV cache for "
                f"{probe.ctx} tokens + scratch per slot) + weights {format_size(weights)} (shared) + process "
                f"{format_size(process)}, but --mem is {format_size(mem)}; use fewer --parallel slots, a shorter "
                f"--ctx or a larger --mem")
    del probe
    share = (mem - process - weights) // parallel
    if share <= 0:
        raise MemoryBudgetError(f"--mem {format_size(mem)} leaves nothing for the slots after the weights "
                                f"({format_size(weights)}) and the process ({format_size(process)})")
    models = []
    for i in range(parallel):
        try:
            models.append(Model(path, threads=threads, ctx=ctx, mem=weights + share, mem_scope="model", **model_kw))
        except MemoryBudgetError as e:
            raise MemoryBudgetError(f"slot {i + 1} of --parallel {parallel} (a share of {format_size(share)} each "
                                    f"beside the shared weights) does not fit: {e}") from e
    plan = SlotPlan(parallel, mem, process, weights, [private_bytes(m.memory_plan) for m in models])
    return models, plan
