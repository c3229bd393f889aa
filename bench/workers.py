"""One measurement per fresh process: the llama.cpp side (llama-cpp-python) and edgerun's tokenizer.

Run as `python bench/workers.py KIND JSON_PARAMS`; prints one line RESULT_TAG + JSON result.
bench_vs_llamacpp.run_worker() starts it (with sysmeasure.HWM_SNIPPET for the peak RSS).

Contract (params -> result)
    llama_speed    {model, threads, prompt_tokens, gen_tokens, runs, text[, n_ubatch, flash_attn]}
                   -> {prefill_tok_s, decode_tok_s (medians of runs after one warm-up run),
                       perf_* (llama_perf_context's own rates), runs, system_info, llama_cpp_version}
    llama_ppl      {model, threads, ctx, chunks, text} -> {ppl, scored, chunks, text_tokens, add_bos,
                   eval_s, chunk_tokens_sha256}   (llama-perplexity's protocol, see llama_ppl_chunks)
    llama_quantize {src, dst, ftype, pure, threads} -> {quantize_s}
    edge_tokens    {model, text, ctx, chunks} -> {text_tokens, add_bos, chunk_tokens_sha256}
    Any params may carry no_amx: true (llama_* kinds then run deny_amx() first).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np

RESULT_TAG = "@@RESULT "
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deny_amx() -> None:
    """Make this process's arch_prctl(ARCH_REQ_XCOMP_PERM, ...) fail with EPERM (seccomp filter), so
    ggml_amx_init() fails and llama.cpp uses its ordinary AVX-512/AVX2 path with the CPU_REPACK buffer,
    as on any CPU without AMX. Why: llama.cpp's AMX matmul segfaults at ldtilecfg on some machines
    (llama.cpp issue #20824, PR #26954), this one included, and a GGML_NATIVE build enables it
    whenever the CPU reports amx_int8. x86-64 Linux only; everything else is allowed."""
    import ctypes
    import struct

    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    prog = [(ld, 0, 0, 4), (jeq, 0, 5, 0xC000003E),  # seccomp_data.arch == AUDIT_ARCH_X86_64
            (ld, 0, 0, 0), (jeq, 0, 3, 158),  # nr == SYS_arch_prctl
            (ld, 0, 0, 16), (jeq, 0, 1, 0x1023),  # args[0] == ARCH_REQ_XCOMP_PERM
            (ret, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
            (ret, 0, 0, 0x7FFF0000)]  # SECCOMP_RET_ALLOW
    code = ctypes.create_string_buffer(b"".join(struct.pack("<HBBI", *i) for i in prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(code, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        raise OSError(ctypes.get_errno(), "seccomp filter to disable AMX could not be installed")


def _llama(model: str, threads: int, n_ctx: int, logits_all: bool, n_ubatch: int | None = None,
           flash_attn: bool = False):
    """n_ubatch None: the whole context in one micro-batch (what the perplexity protocol needs)."""
    from llama_cpp import Llama

    return Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ubatch or n_ctx, n_threads=threads,
                 n_threads_batch=threads, logits_all=logits_all, use_mmap=True, verbose=False, flash_attn=flash_attn)


def _last_logits(llm) -> np.ndarray:
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def worker_llama_speed(p: dict) -> dict:
    """Prefill p['prompt_tokens'] tokens of the text, then decode p['gen_tokens'] greedy tokens, one per
    eval(); a warm-up run then p['runs'] timed runs. Optional p['n_ubatch'] (default: the whole prompt in one)
    and p['flash_attn'] (default off)."""
    import llama_cpp

    llm = _llama(p["model"], p["threads"], p["prompt_tokens"] + p["gen_tokens"], logits_all=False,
                 n_ubatch=p.get("n_ubatch"), flash_attn=bool(p.get("flash_attn", False)))
    with open(p["text"], encoding="utf-8") as f:
        prompt = llm.tokenize(f.read(20000).encode("utf-8"), add_bos=True)[: p["prompt_tokens"]]
    assert len(prompt) == p["prompt_tokens"], "text too short for the prompt"
    runs = []
    for r in range(p["runs"] + 1):
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
        t0 = time.perf_counter()
        llm.eval(prompt)
        tok = int(np.argmax(_last_logits(llm)))
        t1 = time.perf_counter()
        for _ in range(p["gen_tokens"]):
            llm.eval([tok])
            tok = int(np.argmax(_last_logits(llm)))
        t2 = time.perf_counter()
        perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
        if r == 0:
            continue  # warm-up: page faults of the mmap, thread pool start
        runs.append({"prefill_tok_s": len(prompt) / (t1 - t0), "decode_tok_s": p["gen_tokens"] / (t2 - t1),
                     "perf_prefill_tok_s": 1000.0 * perf.n_p_eval / perf.t_p_eval_ms if perf.t_p_eval_ms else None,
                     "perf_decode_tok_s": 1000.0 * perf.n_eval / perf.t_eval_ms if perf.t_eval_ms else None})
    med = {k: statistics.median([r[k] for r in runs if r[k] is not None]) for k in runs[0]}
    return {**med, "runs": runs, "system_info": llama_cpp.llama_print_system_info().decode(),
            "llama_cpp_version": llama_cpp.__version__}


def llama_ppl_chunks(tokens: list[int], n_ctx: int, n_chunks: int, bos: int | None) -> list[list[int]]:
    """llama-perplexity's chunking: consecutive n_ctx windows; first token replaced by BOS if bos."""
    n = min(n_chunks, len(tokens) // n_ctx)
    chunks = []
    for i in range(n):
        c = list(tokens[i * n_ctx:(i + 1) * n_ctx])
        if bos is not None:
            c[0] = bos
        chunks.append(c)
    return chunks


def score_chunk(logits: np.ndarray, chunk: list[int]) -> tuple[float, int]:
    """Sum of −log p(chunk[j+1] | ..chunk[j]) for j in [n/2, n−1) — llama-perplexity's window."""
    n = len(chunk)
    first = n // 2
    lg = logits[first:n - 1].astype(np.float64)
    lg -= lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg).sum(axis=1))
    tgt = np.asarray(chunk[first + 1:n])
    nll = lse - lg[np.arange(len(tgt)), tgt]
    return float(nll.sum()), len(tgt)


def chunks_sha256(chunks: list[list[int]]) -> str:
    import hashlib

    return hashlib.sha256(np.asarray([t for c in chunks for t in c], dtype=np.int64).tobytes()).hexdigest()


def worker_llama_ppl(p: dict) -> dict:
    llm = _llama(p["model"], p["threads"], p["ctx"], logits_all=True)
    with open(p["text"], encoding="utf-8") as f:
        text = f.read()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)  # add_special: BOS only if the vocab adds it
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    chunks = llama_ppl_chunks(tokens, p["ctx"], p["chunks"], llm.token_bos() if add_bos else None)
    nll, count = 0.0, 0
    t0 = time.perf_counter()
    for c in chunks:
        llm.reset()
        llm.eval(c)
        s, k = score_chunk(np.asarray(llm.scores[:len(c)]), c)
        nll += s
        count += k
    dt = time.perf_counter() - t0
    return {"ppl": float(np.exp(nll / count)), "scored": count, "chunks": len(chunks),
            "text_tokens": len(tokens), "add_bos": add_bos, "eval_s": dt,
            "chunk_tokens_sha256": chunks_sha256(chunks)}


def worker_llama_quantize(p: dict) -> dict:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = p["ftype"]
    params.pure = p["pure"]
    params.nthread = p["threads"]
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(p["src"].encode(), p["dst"].encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc}")
    return {"quantize_s": time.perf_counter() - t0}


def run_worker_main(kind: str, params: dict) -> None:
    if params.get("no_amx") and kind.startswith("llama"):
        deny_amx()
    res = WORKERS[kind](params)
    print(RESULT_TAG + json.dumps(res), flush=True)


def worker_edge_tokens(p: dict) -> dict:
    """edgerun's tokenization of the text, chunked exactly as worker_llama_ppl chunks llama.cpp's."""
    sys.path[:0] = [os.path.join(REPO, "converter"), os.path.join(REPO, "runtime")]
    from edgerun import Model

    m = Model(p["model"], threads=1)
    with open(p["text"], encoding="utf-8") as f:
        text = f.read()
    add_bos = bool(m.metadata("tokenizer.add_bos")) and m.bos_id >= 0
    tokens = m.tokenize(text, add_bos=add_bos, special=False)
    chunks = llama_ppl_chunks(tokens, p["ctx"], p["chunks"], m.bos_id if add_bos else None)
    return {"text_tokens": len(tokens), "add_bos": add_bos, "chunk_tokens_sha256": chunks_sha256(chunks)}


WORKERS = {"edge_tokens": worker_edge_tokens, "llama_speed": worker_llama_speed, "llama_ppl": worker_llama_ppl,
           "llama_quantize": worker_llama_quantize}


if __name__ == "__main__":
    run_worker_main(sys.argv[1], json.loads(sys.argv[2]))
