"""GPTQ groups of an export run in worker processes, so every core works (numpy's per-column GPTQ steps are
one thread each; quant/gptq.py pins BLAS to one thread).

    GptqJobs(run, keys, jobs)       run(key) -> {tensor name: bytes}, keys in the order they will be asked for
    .result(key) -> dict            blocks until that key's result is there
    .close()                        (also on leaving `with GptqJobs(...)`)

Workers are forked (Linux / macOS "fork" start method), so they see the parent's calibration statistics, open
source and plan without copying or pickling them: the state is the closure `run`, put in a module global
before the pool starts. Each key is computed by exactly the same code whichever process runs it, so the
output does not depend on `jobs` (tests/test_gptq_jobs.py). jobs <= 1, or no fork: everything runs inline,
in order.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Hashable, Sequence

__all__ = ["GptqJobs", "default_jobs"]

_RUN: Callable | None = None  # the forked workers' task (set in the parent before the pool forks)


def default_jobs() -> int:
    """Cores this process may use, at most 4 (the export's memory grows with each worker)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _call(key):
    return _RUN(key)


class GptqJobs:
    def __init__(self, run: Callable[[Hashable], dict], keys: Sequence[Hashable], jobs: int):
        global _RUN
        self.run = run
        self.pool = None
        self.futures: dict[Hashable, Future] = {}
        if jobs > 1 and len(keys) > 1 and "fork" in multiprocessing.get_all_start_methods():
            _RUN = run
            self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
            self.futures = {k: self.pool.submit(_call, k) for k in keys}

    def result(self, key: Hashable) -> dict:
        f = self.futures.pop(key, None)
        return self.run(key) if f is None else f.result()

    def __enter__(self) -> "GptqJobs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        global _RUN
        if self.pool is not None:
            for f in self.futures.values():
                f.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None
        _RUN = None
