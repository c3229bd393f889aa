"""edgerun.train(): the training loop over the C++ engine `_core.Trainer` (docs/TRAINING.md).

    result = edgerun.train("model.edge", "notes.txt", out="notes.adapter.edge", method="lora", rank=8,
                           targets=("q", "v"), steps=100, batch=4, seq=256)

A step is one optimizer update from `grad_accum` micro-batches of `batch` windows (data.py); the windows are
taken in order from the stream of seeded epoch permutations, so micro-batch k is a pure function of (seed, k).
Learning rate: `lr`, linearly warmed up over `warmup` steps, then constant or cosine-decayed to 0 at the last
step. MeZO (method "mezo") takes one batch per step, two forward passes, z drawn from seed·P + step.
Sparse (method "sparse"): the engine measures each trainable tensor's contribution on the first
`sparse_batches` batches; the top `sparse_fraction` of them (by score) are trained, the plan is stored in the
adapter (adapter.sparse_plan) and in the checkpoint.

Saving: every `save_every` steps and at the end, first the checkpoint OUT.ckpt (parameters, optimizer state,
step, data position and the run's settings), then the adapter OUT — each written atomically (adapter.py).
resume=True continues from OUT.ckpt: the same settings and data are required (else ValueError saying which
differs), parameters and optimizer state are restored bit for bit, and the data stream continues at the saved
micro-batch, so a run killed at any moment (SIGKILL included) and resumed reaches the losses of an
uninterrupted run (the engine's results do not depend on the thread count or on timing).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from .adapter import TARGETS, checkpoint_path, read_checkpoint, write_adapter, write_checkpoint
from .data import Dataset, load_data, order

__all__ = ["train", "METHODS", "OPTIMIZERS", "lr_at"]

METHODS = ("lora", "bias", "sparse", "mezo")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "cosine")
_MEZO_SEED_STRIDE = 1_000_003

# settings a resumed run must share with the saved one (anything else, e.g. threads, may change)
_RESUME_KEYS = ("method", "rank", "alpha", "targets", "lr", "batch", "seq", "grad_accum", "optimizer", "seed",
                "total_steps", "warmup", "schedule", "weight_decay", "mezo_eps", "data", "momentum", "dtype")
# a checkpoint written before a setting existed ran with its default
_RESUME_DEFAULTS = {"momentum": 0.0, "dtype": "f32"}


def lr_at(step: int, lr: float, total: int, warmup: int = 0, schedule: str = "constant") -> float:
    """The learning rate of step `step` (0-based) of `total`."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine" and total > warmup:
        return lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))
    return lr


def _peak_rss_mb() -> float:
    from ..cli import _peak_rss_mb as peak

    return peak()


def _engine():
    from .. import _core

    trainer = getattr(_core, "Trainer", None)
    if trainer is None:
        raise RuntimeError("this edgerun build has no training engine (_core.Trainer); rebuild from a tree that has "
                           "csrc/train/")
    return trainer


class _Stream:
    """Micro-batch k of the seeded epoch permutations (each epoch a new permutation of the N windows)."""

    def __init__(self, ds: Dataset, batch: int, seed: int):
        self.ds, self.batch, self.seed = ds, batch, seed
        self._perm: dict[int, np.ndarray] = {}

    def idx(self, k: int) -> np.ndarray:
        n = len(self.ds)
        out = []
        for g in range(k * self.batch, (k + 1) * self.batch):
            e, i = divmod(g, n)
            if e not in self._perm:
                self._perm = {e: order(n, e, self.seed)}
            out.append(self._perm[e][i])
        return np.asarray(out)

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ds.batch(self.idx(k))


def _evaluate(t, ds: Dataset, batch: int) -> dict:
    """Perplexity of the windows of ds (every scored position once; the last batch padded with unscored rows)."""
    nll, n = 0.0, 0
    for s in range(0, len(ds), batch):
        idx = np.arange(s, min(s + batch, len(ds)))
        toks, mask = ds.batch(idx)
        if len(idx) < batch:
            toks = np.concatenate([toks, np.repeat(toks[:1], batch - len(idx), 0)])
            mask = np.concatenate([mask, np.zeros((batch - len(idx), ds.seq), np.uint8)])
        ls, ns = t.eval_loss(toks, mask)
        nll += float(ls)
        n += int(ns)
    return {"eval_loss": nll / max(n, 1), "eval_ppl": math.exp(nll / max(n, 1)), "eval_tokens": n}


class _DeferInterrupt:
    """Holds a Ctrl-C (SIGINT) until the block ends, so a checkpoint and its adapter are saved as a pair; the
    KeyboardInterrupt is raised after. A no-op outside the main thread."""

    def __enter__(self):
        import signal
        import threading

        self._old, self._hit = None, False
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, lambda *_: setattr(self, "_hit", True))
        return self

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        if self._hit and exc[0] is None:
            raise KeyboardInterrupt
        return False


def _check_args(method, optimizer, schedule, targets, rank, alpha, batch, seq, grad_accum, steps, epochs, lr,
                save_every, warmup, sparse_fraction):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    bad = [x for x in targets if x not in TARGETS]
    if bad or not targets:
        raise ValueError(f"targets must be a non-empty subset of {','.join(TARGETS)}, got {','.join(targets) or 'none'}")
    for name, v, lo in (("rank", rank, 1), ("batch", batch, 1), ("seq", seq, 2), ("grad_accum", grad_accum, 1),
                        ("save_every", save_every, 0), ("warmup", warmup, 0)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    if steps is not None and epochs is not None:
        raise ValueError("give steps or epochs, not both")
    if steps is not None and steps < 1 or epochs is not None and epochs < 1:
        raise ValueError("steps / epochs must be >= 1")
    if not (lr > 0 and math.isfinite(lr)) or not (alpha > 0 and math.isfinite(alpha)):
        raise ValueError(f"lr and alpha must be finite and > 0, got lr {lr}, alpha {alpha}")
    if method == "mezo" and grad_accum != 1:
        raise ValueError("mezo takes one batch per step (two forward passes): grad_accum must be 1")
    if not 0 < sparse_fraction <= 1:
        raise ValueError(f"sparse_fraction must be in (0, 1], got {sparse_fraction}")


def train(model_path: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, method: str = "lora",
          rank: int = 8, alpha: float = 16.0, targets: Sequence[str] = ("q", "v"), lr: float = 1e-4,
          steps: int | None = None, epochs: int | None = None, batch: int = 4, seq: int = 256,
          grad_accum: int = 1, optimizer: str = "adamw", seed: int = 0, mem: str | int | None = None,
          threads: int | None = None, eval_data: str | os.PathLike | None = None, save_every: int = 0,
          resume: bool = False, warmup: int = 0, schedule: str = "constant", weight_decay: float = 0.0,
          mezo_eps: float = 1e-3, sparse_fraction: float = 0.25, sparse_batches: int = 2, log_every: int = 1,
          momentum: float = 0.0, dtype: str = "f32",
          on_log: Callable[[dict], None] | None = None, progress: bool = False,
          message: Callable[[str], None] | None = None) -> dict:
    """Train an adapter of `model_path` on `data` (text or .jsonl chat) and write it to `out`.

    Returns {"steps", "loss" (last step's), "first_loss", "eval_ppl_before"/"eval_ppl_after" (with eval_data),
    "tokens_per_s", "peak_rss_mb", "adapter", "checkpoint", "resumed_from", "sparse_plan", "memory_plan"}.
    on_log(record) is called every log_every steps with {"step", "loss", "lr", "tokens", "tok_s",
    "peak_rss_mb", "elapsed_s"}; progress=True shows a tqdm bar; message(text) gets one-line notes.
    """
    from ..model import Model
    from ..sizes import parse_size

    targets = tuple(targets)
    _check_args(method, optimizer, schedule, targets, rank, alpha, batch, seq, grad_accum, steps, epochs, lr,
                save_every, warmup, sparse_fraction)
    say = message or (lambda _m: None)
    out = os.fspath(out)
    ckpt = checkpoint_path(out)
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise FileNotFoundError(f"{out}: the output folder does not exist")
    Trainer = _engine()
    model = Model(model_path, threads=threads, ctx=seq, batch=min(seq, 128))
    ds = load_data(model, data, seq)
    ev = load_data(model, eval_data, seq) if eval_data is not None else None
    per_step = batch * grad_accum
    total = steps if steps is not None else (epochs or 1) * max(1, -(-len(ds) // per_step))
    settings = dict(method=method, rank=int(rank), alpha=float(alpha), targets=",".join(targets), lr=float(lr),
                    batch=int(batch), seq=int(seq), grad_accum=int(grad_accum), optimizer=optimizer, seed=int(seed),
                    total_steps=int(total), warmup=int(warmup), schedule=schedule, weight_decay=float(weight_decay),
                    mezo_eps=float(mezo_eps), data=ds.digest, momentum=float(momentum), dtype=dtype)

    start_step, k, resumed, plan = 0, 0, None, None
    saved = None
    if resume:
        if not os.path.exists(ckpt):
            raise FileNotFoundError(f"{ckpt}: no checkpoint to resume from (runs with --save-every write one)")
        saved = read_checkpoint(ckpt)
        st = saved[2]
        diff = [key for key in _RESUME_KEYS
                if st.get("settings", {}).get(key, _RESUME_DEFAULTS.get(key)) != settings[key]]
        if diff:
            raise ValueError(f"{ckpt}: cannot resume with different settings: "
                             + ", ".join(f"{key} {st['settings'].get(key)!r} -> {settings[key]!r}" for key in diff))
        start_step, k, resumed = int(st["step"]), int(st["micro"]), int(st["step"])
        plan = st.get("sparse_plan") or None

    stream = _Stream(ds, batch, seed)
    kw: dict[str, Any] = dict(method=method, rank=int(rank), alpha=float(alpha), targets=list(targets), seed=int(seed),
                              optimizer=optimizer, lr=float(lr), weight_decay=float(weight_decay), batch=int(batch),
                              seq=int(seq), mem_budget=parse_size(mem), mezo_eps=float(mezo_eps))
    if momentum:
        kw["momentum"] = float(momentum)
    if dtype != "f32":
        kw["dtype"] = dtype
    if method == "sparse" and plan is None:
        probe = Trainer(model._m, **kw)
        scores: dict[str, float] = {}
        for j in range(max(1, sparse_batches)):
            for name, v in probe.measure_contributions(*stream.get(j)).items():
                scores[name] = scores.get(name, 0.0) + float(v)
        ranked = sorted(scores, key=lambda n: (-scores[n], n))
        plan = sorted(ranked[:max(1, math.ceil(sparse_fraction * len(ranked)))])
        del probe
        say(f"sparse plan: {len(plan)} of {len(ranked)} tensors: " + ", ".join(plan[:8]) + (" ..." if len(plan) > 8 else ""))
    t = Trainer(model._m, params=plan, **kw) if method == "sparse" else Trainer(model._m, **kw)
    if saved is not None:
        t.load_parameters(saved[0])
        if saved[1]:
            t.load_optimizer_state(saved[1])
        say(f"resumed from {ckpt} at step {start_step} of {total}")

    result: dict[str, Any] = {"adapter": out, "checkpoint": ckpt, "resumed_from": resumed, "sparse_plan": plan,
                              "memory_plan": dict(t.memory_plan), "steps": total}
    if ev is not None and start_step == 0:
        result["eval_ppl_before"] = _evaluate(t, ev, batch)["eval_ppl"]

    def save(step_done: int, loss: float | None) -> None:
        params = t.parameters()
        state = {"step": step_done, "micro": k, "settings": settings, "sparse_plan": plan or [],
                 "loss": loss}
        with _DeferInterrupt():
            _save_pair(params, state, step_done, loss)

    def _save_pair(params, state, step_done: int, loss: float | None) -> None:
        write_checkpoint(ckpt, params, t.optimizer_state() if method != "mezo" else {}, state)
        write_adapter(out, params, model_path, method=method, rank=rank if method in ("lora", "mezo", "sparse") else 0,
                      alpha=alpha, targets=list(targets), sparse_plan=plan,
                      train_meta={"train.step": step_done, "train.seed": int(seed), "train.data_hash": ds.digest,
                                  "train.optimizer": optimizer, "train.loss": float(loss if loss is not None else float("nan"))})

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, leave=True)
    t0 = time.perf_counter()
    tokens_done = 0
    loss = None
    try:
        for step in range(start_step, total):
            rate = lr_at(step, lr, total, warmup, schedule)
            if method == "mezo":
                toks, mask = stream.get(k)
                k += 1
                loss = float(t.mezo_step(toks, mask, rate, int(seed) * _MEZO_SEED_STRIDE + step))
            else:
                ls, ns = 0.0, 0
                for _ in range(grad_accum):
                    toks, mask = stream.get(k)
                    k += 1
                    a, b = t.forward_backward(toks, mask)
                    ls, ns = ls + float(a), ns + int(b)
                t.optimizer_step(lr=rate)
                loss = ls / max(ns, 1)
            if "first_loss" not in result:
                result["first_loss"] = loss
            tokens_done += per_step * seq
            done = step + 1
            el = time.perf_counter() - t0
            rec = {"step": done, "loss": loss, "lr": rate, "tokens": tokens_done, "tok_s": tokens_done / max(el, 1e-9),
                   "peak_rss_mb": _peak_rss_mb(), "elapsed_s": el}
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rec['tok_s']:.0f}", rss=f"{rec['peak_rss_mb']:.0f}MB",
                                refresh=False)
                bar.update(1)
            saving = save_every and done % save_every == 0 and done != total
            if saving:  # before the step's record: a logged step that was due a save is on disk
                save(done, loss)
            if on_log is not None and (done % max(1, log_every) == 0 or done == total):
                on_log(rec)
            if saving and ev is not None:
                say(f"step {done}: eval perplexity {_evaluate(t, ev, batch)['eval_ppl']:.4f}")
    finally:
        if bar is not None:
            bar.close()
    save(total, loss)
    el = time.perf_counter() - t0
    result.update(loss=loss, tokens_per_s=tokens_done / max(el, 1e-9), peak_rss_mb=_peak_rss_mb(), seconds=el)
    if ev is not None:
        result["eval_ppl_after"] = _evaluate(t, ev, batch)["eval_ppl"]
    return result
