"""edgerun.Model — load an .edge file and run it: logits, streaming generation, perplexity."""

from __future__ import annotations

import codecs
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from . import _core
from .sizes import parse_size


@dataclass
class SamplingParams:
    """Sampler settings; temperature 0 is greedy. Defaults are llama.cpp's (common_params_sampling), applied
    in its order: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw (csrc/sampler.h)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int = 0

    def make(self) -> "_core.Sampler":
        return _core.Sampler(self.temperature, self.top_k, self.top_p, self.min_p, self.repeat_penalty,
                             self.repeat_last_n, self.seed)


def _adapter_list(adapter) -> list[tuple[str, float]]:
    """[(path, scale)] of Model's adapter argument (None, one spec, or a list of specs)."""
    from .train.adapter import parse_adapter_spec

    if adapter is None:
        return []
    if isinstance(adapter, (str, os.PathLike, tuple)):
        adapter = [adapter]
    return [parse_adapter_spec(a) for a in adapter]


class Model:
    """A model loaded from an .edge file (read-only mmap; weights are not copied).

    threads: worker threads (default: all CPUs); mem: hard budget ("1GB", bytes) checked before
    loading — resident weights + KV cache + scratch (+ for MoE models the expert store's I/O buffers
    and at least k expert slots) must fit; ctx: KV-cache length (default min(trained, 4096); with `mem`
    and no ctx, the longest up to the trained context that fits: `ctx_from_budget` says so).
    kv: how the KV cache stores K and V: "auto" (default: "f16" on the CPU, "f32" on the CUDA backend, which has
    f32 attention only), "f32", "f16" (half of f32's bytes), "q8" (int8 with one scale per token and head,
    about a quarter) or "kivi4" / "kivi2" (KIVI: K per channel and V per token in 4- / 2-bit groups of 32 with
    an f16 scale and min, the most recent 128 (+ up to 31) positions in f16, kivi2 also each group's 4 K channels
    of largest magnitude; head dims that are multiples of 32; sliding-window layers keep their f16 ring); the CUDA backend refuses an explicit f16 / q8 / kivi. swa_ring: sliding-window
    layers keep a ring of about `window` positions instead of the whole context (CPU; same results).

    MoE models (docs/MOE.md): with `mem` the experts left over after the fixed terms are streamed from
    disk through a cache of whole expert slots; without it every expert is kept resident.
    cache_policy: "lfru" (default) or "lru"; io_threads: background readers; moe_lowbit: "off"
    (default, results identical to a resident run) or "miss" (a cold expert whose routing weight is
    below moe_lowbit_threshold is read in the next lower precision).

    device: "cpu" (default) or "cuda" (the first NVIDIA GPU through the CUDA backend plugin; the same file);
    gpu_mem: device memory the plan may use ("6GB", bytes; default what is free minus 256 MiB). A missing
    GPU, driver or plugin raises UnsupportedError and leaves the CPU path usable.

    mem_scope: "model" (default) budgets the model's own memory; "process" makes `mem` bound the whole
    process: its resident set when the model is planned (interpreter, libraries, tokenizer) plus a
    margin is counted as memory_plan["process"]. The CLI uses "process", so `--mem` holds under a cgroup.

    adapter: trained adapters (`edgerun train`, docs/TRAINING.md) applied to the matrices they target: a path,
    "path:SCALE", (path, scale), or a list of these; several are summed, each times its scale (default 1).
    An adapter trained on another base file raises EdgeError naming both files. Their f32 terms are counted
    as memory_plan["adapters"]. CPU only for now (device="cuda" with an adapter raises UnsupportedError).

    n_seq: KV-cache sequences (each `ctx` positions, all in the one plan): eval()/generate() use sequence 0;
    eval_batch() steps several sequences at once (the server's slots, runtime/edgerun/server/scheduler.py).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, mem: str | int | None = None,
                 ctx: int | None = None, batch: int = 128, kernels: str | None = None, *,
                 cache_policy: str = "lfru", io_threads: int = 2, moe_lowbit: str = "off",
                 moe_lowbit_threshold: float = 0.2, mem_scope: str = "model", device: str = "cpu",
                 gpu_mem: str | int | None = None, adapter=None, n_seq: int = 1, kv: str = "auto",
                 swa_ring: bool = True):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        if mem_scope not in ("model", "process"):
            raise ValueError(f"mem_scope must be 'model' or 'process', got {mem_scope!r}")
        if moe_lowbit not in ("off", "miss"):
            raise ValueError(f"moe_lowbit must be 'off' or 'miss', got {moe_lowbit!r}")
        self.adapters = _adapter_list(adapter)
        for p, _ in self.adapters:
            if not os.path.exists(p):
                raise FileNotFoundError(f"{p}: no such adapter file")
        self._m = _core.Model(self.path, threads=threads or 0, ctx=ctx or 0, batch=batch, mem=parse_size(mem),
                              kernels=kernels or "", cache_policy=cache_policy, io_threads=io_threads,
                              moe_lowbit=moe_lowbit == "miss", moe_lowbit_threshold=moe_lowbit_threshold,
                              mem_covers_process=mem_scope == "process", device=device, gpu_mem=parse_size(gpu_mem),
                              adapters=self.adapters, n_seq=n_seq, kv=kv, swa_ring=swa_ring)
        self._cached: list[int] = []  # tokens whose K/V are in the cache, in order
        self.config = self._m.config
        self.vocab_size = self.config["vocab_size"]

    # ---- info -------------------------------------------------------------------------------
    @property
    def ctx(self) -> int:
        return self._m.ctx

    @property
    def ctx_from_budget(self) -> bool:
        """True when ctx was chosen as the longest context that fits `mem` (no ctx was given)."""
        return self._m.ctx_from_budget

    @property
    def kv(self) -> str:
        return self._m.kv

    @property
    def swa_ring(self) -> int:
        """Slots of each sliding-window layer's KV ring (0: every layer caches the whole context)."""
        return self._m.swa_ring

    @property
    def n_past(self) -> int:
        return self._m.n_past

    @property
    def threads(self) -> int:
        return self._m.threads

    @property
    def device(self) -> str:
        """The backend that runs the model: "cpu" or "cuda"."""
        return self._m.device

    @property
    def memory_plan(self) -> dict:
        return self._m.memory_plan

    @property
    def is_moe(self) -> bool:
        return self._m.is_moe

    @property
    def moe_stats(self) -> dict:
        """Expert cache statistics since load / moe_reset_stats(): hits, misses, hit_rate, prefetch_issued,
        prefetch_used, evictions, reads, bytes_read, lowbit_serves, retries, io_stall_s, io_busy_s,
        true_total, predicted_true, recall (None until counted). All zero for a dense model."""
        return self._m.moe_stats

    def moe_reset_stats(self) -> None:
        self._m.moe_reset_stats()

    @property
    def layer_stream_stats(self) -> dict | None:
        """For a dense model larger than `mem`, whose layers are streamed from disk through a window of
        layer buffers (memory_plan["layer_window"] of them): hits, misses, reads, bytes_read, retries,
        io_stall_s, io_busy_s. None when every layer is mapped."""
        return self._m.layer_stream_stats

    @property
    def kernel_level(self) -> str:
        return self._m.kernel_level

    def metadata(self, key: str):
        return self._m.metadata(key)

    @property
    def chat_template(self) -> str | None:
        return self._m.metadata("tokenizer.chat_template")

    @property
    def eos_id(self) -> int:
        return self._m.eos_id

    @property
    def bos_id(self) -> int:
        return self._m.bos_id

    # ---- text ---------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool | None = None, special: bool = True) -> list[int]:
        return self._m.tokenize(text, add_bos, special)

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        return self._m.detokenize(list(ids), special).decode("utf-8", errors="replace")

    # ---- compute ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the context (KV cache)."""
        self._m.reset()
        self._cached = []

    def eval(self, tokens: Sequence[int], all_logits: bool = False) -> np.ndarray:
        """Append tokens to the context; logits of the last token [vocab] (or of all tokens [n, vocab])."""
        out = self._m.eval(np.asarray(tokens, dtype=np.int32), all_logits)
        self._cached.extend(int(t) for t in tokens)
        return out

    # ---- several sequences (n_seq > 1) ------------------------------------------------------
    @property
    def n_seq(self) -> int:
        return self._m.n_seq

    @property
    def batch(self) -> int:
        """The most tokens one eval() step or eval_batch() call takes."""
        return self._m.batch

    def eval_batch(self, seq_ids: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """One step over several sequences: tokens[i] is appended to sequence seq_ids[i] (a sequence's tokens
        consecutive, at most batch in all). Returns the logits [runs, vocab]: one row per run of equal
        seq_ids, after its last token. Sequence 0 is eval()'s: its cached-token list is not kept here."""
        return self._m.eval_batch(np.asarray(seq_ids, dtype=np.int32), np.asarray(tokens, dtype=np.int32))

    def seq_n_past(self, seq: int) -> int:
        return self._m.seq_n_past(seq)

    def seq_keepable(self, seq: int, n: int) -> int:
        """The longest prefix <= n of sequence `seq` that seq_truncate can keep: n, or 0 where a sliding-window
        ring (swa_ring) has overwritten positions the next token's window needs, or (kv kivi4 / kivi2) positions
        after the prefix's quantized groups have left the f16 residual ring."""
        return self._m.seq_keepable(seq, n)

    def seq_truncate(self, seq: int, n: int) -> None:
        """Drop positions >= n of sequence `seq` (0 <= n <= its n_past)."""
        self._m.seq_truncate(seq, n)
        if seq == 0:
            del self._cached[n:]

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits [n, vocab] of a fresh forward pass over `tokens` (the context is reset first)."""
        self.reset()
        return self.eval(tokens, all_logits=True)

    def _reuse_prefix(self, ids: list[int]) -> list[int]:
        """Keep the cached prefix shared with `ids` (at least one token left to evaluate); return the rest."""
        n = 0
        limit = min(len(self._cached), len(ids) - 1)
        while n < limit and self._cached[n] == ids[n]:
            n += 1
        n = self._m.keepable(n)  # 0 where a sliding-window ring no longer holds the prefix's last window
        self._m.truncate(n)
        del self._cached[n:]
        return ids[n:]

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, *, temperature: float = 0.8,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05, repeat_penalty: float = 1.0,
                 seed: int = 0, stop_ids: Sequence[int] | None = None,
                 tokens_out: list | None = None) -> Iterator[str]:
        """Stream text pieces as they are generated (UTF-8 safe).

        prompt: text (tokenized with BOS per the model) or token ids. The KV cache is reused for the
        longest prefix it shares with the prompt (a chat re-sends the whole conversation each turn).
        Stops at EOS / stop_ids or after max_tokens; tokens_out, if given, receives every generated id.
        Sampling defaults are llama.cpp's (see SamplingParams); temperature=0 is greedy.
        """
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not ids:
            raise ValueError("generate: empty prompt")
        if len(ids) + 1 > self.ctx:
            raise ValueError(f"prompt of {len(ids)} tokens does not fit the context of {self.ctx}")
        feed = self._reuse_prefix(ids)
        stops = set(stop_ids if stop_ids is not None else ([self.eos_id] if self.eos_id >= 0 else []))
        sampler = SamplingParams(temperature, top_k, top_p, min_p, repeat_penalty, 64, seed).make()
        history = list(ids)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if max_tokens < 1 or self.n_past + len(feed) > self.ctx:
            return
        # Pipelined on a GPU (Model.eval_sample_launch): the step of the next token is launched before this
        # token's text is handed out, so the host's work per token overlaps the device's. Same tokens.
        pipe = self._m.pipelined(sampler)
        inflight = 0
        try:
            tok = self._m.eval_sample(np.asarray(feed, dtype=np.int32), sampler, history)
            self._cached.extend(feed)
            n = 1
            while True:
                if tokens_out is not None:
                    tokens_out.append(tok)
                history.append(tok)
                if tok in stops:
                    break
                if n >= max_tokens or len(self._cached) + 1 > self.ctx:  # _cached: the steps committed
                    piece = decoder.decode(self._m.token_bytes(tok, False))
                    if piece:
                        yield piece
                    break
                if pipe and inflight == 0:
                    pipe = self._m.eval_sample_launch(tok, sampler)
                    inflight += pipe
                if pipe:  # a step feeding the pending pick, unless that pick is the last token wanted
                    if n + 1 < max_tokens and self.n_past + 1 <= self.ctx and self._m.eval_sample_launch(-1, sampler):
                        inflight += 1
                piece = decoder.decode(self._m.token_bytes(tok, False))
                if piece:
                    yield piece
                if pipe:
                    nxt = self._m.eval_sample_wait()
                    inflight -= 1
                else:
                    nxt = self._m.eval_sample(np.asarray([tok], dtype=np.int32), sampler, history)
                self._cached.append(tok)  # the step that fed tok
                tok, n = nxt, n + 1
        finally:  # steps launched past the end (a stop token, an early close): waited for, then undone
            while inflight:
                inflight -= 1
                self._m.eval_sample_wait()
            if self.n_past > len(self._cached):
                self._m.truncate(len(self._cached))
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def perplexity_chunks(self, text_or_tokens: str | Sequence[int], ctx: int = 512,
                          chunks: int | None = None) -> list[list[int]]:
        """The token ids perplexity() runs: consecutive chunks of `ctx` tokens of the text (tokenized whole, as
        llama-perplexity), at most `chunks` of them, the first token of each replaced by BOS when the model adds one.
        ValueError on a ctx below 4 or above the model's, or a text shorter than one chunk."""
        add_bos = bool(self.metadata("tokenizer.add_bos")) and self.bos_id >= 0
        if isinstance(text_or_tokens, str):  # as llama-perplexity: the whole text, BOS first if the model adds one
            tokens = self.tokenize(text_or_tokens, add_bos=add_bos, special=False)
        else:
            tokens = list(text_or_tokens)
        if ctx < 4:
            raise ValueError(f"perplexity ctx must be at least 4 (half of each chunk is scored), got {ctx}")
        if ctx > self.ctx:
            raise ValueError(f"perplexity ctx {ctx} exceeds the model's context {self.ctx}; load with ctx={ctx}")
        n_chunks = len(tokens) // ctx
        if chunks is not None:
            n_chunks = min(n_chunks, chunks)
        if n_chunks < 1:
            raise ValueError(f"need at least {ctx} tokens for one chunk, got {len(tokens)}")
        out = [tokens[c * ctx:(c + 1) * ctx] for c in range(n_chunks)]
        return [[self.bos_id] + ch[1:] for ch in out] if add_bos else out

    def perplexity(self, text_or_tokens: str | Sequence[int], ctx: int = 512, chunks: int | None = None,
                   progress: Callable[[int, int, float], None] | None = None) -> dict:
        """Perplexity with llama.cpp's protocol: consecutive chunks of `ctx` tokens, BOS at each chunk's
        start when the model adds one, only the second half of every chunk scored.
        progress(chunks done, chunks in all, running perplexity), if given, is called after each chunk."""
        ids = self.perplexity_chunks(text_or_tokens, ctx, chunks)
        n_chunks = len(ids)
        first = ctx // 2
        nll, count = 0.0, 0
        for c, chunk in enumerate(ids):
            logits = self.logits(chunk).astype(np.float64)
            lg = logits[first:ctx - 1]
            m = lg.max(axis=1, keepdims=True)
            logz = np.log(np.exp(lg - m).sum(axis=1)) + m[:, 0]
            targets = np.asarray(chunk[first + 1:ctx])
            nll += float((logz - lg[np.arange(len(targets)), targets]).sum())
            count += len(targets)
            if progress is not None:
                progress(c + 1, n_chunks, math.exp(nll / count))
        return {"ppl": math.exp(nll / count), "tokens": count, "chunks": n_chunks, "ctx": ctx}
