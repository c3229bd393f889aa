"""edgerun command line: chat, generate, serve, bench, perplexity, verify, info.

Every numeric option is checked by its argparse type (cli_common: ranges, sizes); every error is one line
on stderr with the exit codes of cli_common.EXIT_CODES (130 for Ctrl-C), never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

from . import cli_common as cc
from .sizes import parse_size


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss would include a large parent's, kept across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _load(args, quiet: bool = False):
    from . import Model
    from .defaults import default_model, ensure_edge
    path = ensure_edge(args.model, quiet=quiet) if getattr(args, "model", None) else default_model(quiet=quiet)
    model = Model(path, threads=args.threads, mem=getattr(args, "mem", None), ctx=getattr(args, "ctx", None),
                  kernels=getattr(args, "kernels", None), mem_scope="process", adapter=getattr(args, "adapter", None),
                  kv=getattr(args, "kv", DEFAULT_KV), **_device_options(args), **_moe_options(args))
    if model.ctx_from_budget and not quiet:
        print(f"context: {model.ctx} tokens, the longest that fits --mem with --kv {model.kv}", file=sys.stderr)
    if getattr(args, "verbose", False):
        _print_kernels(model, f"--kernels {args.kernels}" if getattr(args, "kernels", None) else None)
    return model


DEFAULT_KV = "auto"
KV_CHOICES = ("auto", "f32", "f16", "q8", "kivi4", "kivi2")


def _kv_arg(sp) -> None:
    sp.add_argument("--kv", choices=KV_CHOICES, default=DEFAULT_KV,
                    help="KV cache storage: f16 (half of f32's bytes), q8 (int8 + one scale per token and head, about a "
                         "quarter), kivi4 / kivi2 (KIVI: 4- / 2-bit K per channel and V per token in groups of 32, the "
                         "latest 128-159 positions in f16; kivi2 keeps each group's 4 largest K channels in f16; "
                         "sliding-window layers keep their f16 ring) or f32; default "
                         "auto: f16 on the CPU, f32 with --device cuda (the CUDA backend has f32 attention only)")


def _device_options(args) -> dict:
    """Model keyword arguments of --device / --gpu-mem (the info command's --device names a board instead)."""
    return dict(device=getattr(args, "compute_device", "cpu"), gpu_mem=getattr(args, "gpu_mem", None))


def _device_args(sp) -> None:
    g = sp.add_argument_group("device")
    g.add_argument("--device", dest="compute_device", choices=("cpu", "cuda"), default="cpu",
                   help="where the model runs (default: cpu); cuda: the first NVIDIA GPU, the same .edge file "
                        "(the CUDA backend plugin, loaded only when asked for)")
    g.add_argument("--gpu-mem", type=cc.size, default=None,
                   help="with --device cuda: GPU memory the plan may use, e.g. 6GB (default: what is free minus 256 MiB)")


def _moe_options(args) -> dict:
    """Model keyword arguments of the MoE streaming flags (ignored by dense models)."""
    return dict(cache_policy=getattr(args, "cache_policy", "lfru"), io_threads=getattr(args, "io_threads", 2),
                moe_lowbit=getattr(args, "moe_lowbit", "off"),
                moe_lowbit_threshold=getattr(args, "moe_lowbit_threshold", 0.2))


def _expert_text(model) -> str:
    """The expert cache since the last reset, for humans ("" for a dense model)."""
    if not model.is_moe:
        return ""
    s = model.moe_stats
    hit = "-" if s["hit_rate"] is None else f"{100 * s['hit_rate']:.0f}%"
    rec = "-" if s["recall"] is None else f"{100 * s['recall']:.0f}%"
    text = (f"hit rate {hit}, recall {rec}, {s['bytes_read'] / 1e6:.1f} MB read, "
            f"I/O stall {s['io_stall_s']:.2f} s")
    return text + (f", {s['lowbit_serves']} low-bit" if s["lowbit_serves"] else "")


def _stats_line(model, seconds: float, tokens: int) -> str:
    """One chat --stats line: speed, the expert cache of this reply (MoE), peak RSS."""
    parts = [f"{tokens} tokens, {tokens / max(seconds, 1e-9):.1f} tok/s", _expert_text(model),
             f"rss {_peak_rss_mb():.0f} MB"]
    return ", ".join(p for p in parts if p)


def _print_kernels(model, requested: str | None = None) -> None:
    from . import _core
    from .device import kernel_report
    used = {t["dtype"] for t in _core.file_info(model.path)["tensors"]}
    requested = requested or (f"EDGE_KERNELS={os.environ['EDGE_KERNELS']}" if os.environ.get("EDGE_KERNELS") else None)
    for line in kernel_report(_core.kernel_table(model.kernel_level), _core.kernel_levels(), used, requested):
        print(f"edgerun: {line}", file=sys.stderr)


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """llama.cpp's sampling defaults (common_params_sampling), applied in its order: repetition penalty ->
    top-k -> top-p -> min-p -> temperature -> draw."""
    g = p.add_argument_group("sampling (defaults are llama.cpp's; applied in the order listed)")
    g.add_argument("--repeat-penalty", type=cc.positive_float, default=1.0,
                   help="divide the positive logits (multiply the negative ones) of tokens seen in the last 64 tokens "
                        "by this; 1.0 = off (default 1.0)")
    g.add_argument("--top-k", type=cc.nonneg_int, default=40, help="keep only the K most likely tokens; 0 = off (default 40)")
    g.add_argument("--top-p", type=cc.prob_0_1, default=0.95,
                   help="then keep the most likely tokens whose probabilities sum to P; 1.0 = off (default 0.95)")
    g.add_argument("--min-p", type=cc.prob_0_1, default=0.05,
                   help="then drop tokens less likely than P times the most likely one; 0 = off (default 0.05)")
    g.add_argument("--temp", type=cc.nonneg_float, default=0.8,
                   help="temperature of the final draw: lower is more focused, 0 = greedy, deterministic "
                        "(default 0.8)")
    g.add_argument("--seed", type=SEED, default=0,
                   help="random seed of the draw; the same seed gives the same text (default 0)")


SEED = cc.int_range(0, 2**64 - 1)


def _sampling(args) -> dict:
    return dict(temperature=args.temp, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                repeat_penalty=args.repeat_penalty, seed=args.seed)


def _fit_context(model, template, messages: list[dict], n_system: int, reply_room: int):
    """(messages, prompt ids) that fit the context, as llama.cpp's context shift: the oldest turns after the
    system prompt are dropped until the prompt and `reply_room` tokens fit (a reply that still lacks room
    stops at the end of the context). A last message that does not fit even alone is not sent: it is
    removed, the session goes on, and (messages, None) is returned."""
    dropped = 0
    while True:
        ids = model.tokenize(template.render(messages, add_generation_prompt=True), add_bos=False)
        if len(ids) + reply_room <= model.ctx or len(messages) <= n_system + 1:
            break
        del messages[n_system]  # the oldest turn after the system prompt, with its reply (roles alternate)
        dropped += 1
        if len(messages) > n_system + 1 and messages[n_system]["role"] == "assistant":
            del messages[n_system]
            dropped += 1
    if dropped:
        print(f"(context full: the {dropped} oldest message{'s' * (dropped > 1)} dropped)", file=sys.stderr)
    if len(ids) + 1 > model.ctx:
        print(f"(message not sent: its {len(ids)} tokens do not fit the context of {model.ctx}; "
              "send a shorter one, or start edgerun with a larger --ctx)", file=sys.stderr)
        messages.pop()
        return messages, None
    return messages, ids


def cmd_chat(args) -> int:
    from .chat import template_for
    model = _load(args)
    template = template_for(model)
    messages: list[dict] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    stop = {model.eos_id}
    end_turn = model.tokenize("<|im_end|>", add_bos=False)  # ChatML's end of turn, when it is one token
    if len(end_turn) == 1:
        stop.add(end_turn[0])
    stop.discard(-1)
    print(f"edgerun chat — {os.path.basename(model.path)}, {model.threads} threads, ctx {model.ctx}. "
          "/reset clears the conversation, /exit quits.", file=sys.stderr)
    n_system = 1 if args.system else 0
    # room kept free for a reply: --max-tokens, or with -1 (until the end of the turn) a quarter of the context
    reply_room = model.ctx // 4 if args.max_tokens < 0 else args.max_tokens
    reply_max = model.ctx if args.max_tokens < 0 else args.max_tokens
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:  # at the prompt Ctrl-C quits (exit 130); during a reply it ends the reply
            print(file=sys.stderr)
            raise
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            messages = messages[:1] if args.system else []
            model.reset()
            print("(conversation cleared)", file=sys.stderr)
            continue
        messages.append({"role": "user", "content": text})
        messages, ids = _fit_context(model, template, messages, n_system, reply_room)
        if ids is None:
            continue
        model.moe_reset_stats()
        reply, t0, n = [], time.perf_counter(), []
        try:
            for piece in model.generate(ids, reply_max, stop_ids=stop, tokens_out=n, **_sampling(args)):
                reply.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        dt = time.perf_counter() - t0
        print()
        if args.stats:
            print(f"[{_stats_line(model, dt, len(n))}]", file=sys.stderr)
        messages.append({"role": "assistant", "content": "".join(reply)})


def cmd_generate(args) -> int:
    model = _load(args, quiet=args.json)
    prompt = args.prompt
    if args.chat:
        from .chat import template_for
        prompt = template_for(model).render([{"role": "user", "content": prompt}])
        ids = model.tokenize(prompt, add_bos=False)
    else:
        ids = model.tokenize(prompt)
    out_ids: list[int] = []
    t0 = time.perf_counter()
    pieces = []
    try:  # -n -1: until EOS or the end of the context (generate stops there)
        for piece in model.generate(ids, model.ctx if args.n < 0 else args.n, tokens_out=out_ids, **_sampling(args)):
            pieces.append(piece)
            if not args.json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    except KeyboardInterrupt:
        if not args.json:
            print()  # end the text's line before main() says "interrupted"
        raise
    dt = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"text": "".join(pieces), "tokens": out_ids, "prompt_tokens": len(ids),
                          "seconds": dt}))
    else:
        print()
    return 0


def cmd_serve(args) -> int:
    from .server.main import run
    return run(args)


def cmd_bench(args) -> int:
    model = _load(args, quiet=args.json)
    rng = np.random.default_rng(args.seed)
    vocab = model.vocab_size
    prompt = rng.integers(0, vocab, size=args.prompt_tokens).astype(np.int32)
    prefill, decode = [], []
    for _ in range(args.repeat):
        model.reset()
        t0 = time.perf_counter()
        logits = model.eval(prompt)
        prefill.append(args.prompt_tokens / (time.perf_counter() - t0))
        tok = int(np.argmax(logits))
        t0 = time.perf_counter()
        for _ in range(args.gen_tokens):
            tok = int(np.argmax(model.eval([tok])))
        decode.append(args.gen_tokens / (time.perf_counter() - t0))
    plan = model.memory_plan
    res = {
        "model": model.path,
        "threads": model.threads,
        "kernels": model.kernel_level,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "repeat": args.repeat,
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "prefill_runs": prefill,
        "decode_runs": decode,
        "peak_rss_mb": _peak_rss_mb(),
        "file_mb": os.path.getsize(model.path) / 1e6,
        "memory_plan_mb": {k: v / 1e6 for k, v in plan.items()},
        # the KV cache as planned: its stored form, and bytes per position of the context (codes, scales and
        # KIVI's f16 residual ring included: the plan's kv_cache term / ctx)
        "kv": model.kv,
        "ctx": model.ctx,
        "kv_bytes_per_token": plan["kv_cache"] / model.ctx,
        "mem_budget_mb": parse_size(args.mem) / 1e6 if args.mem else None,
        # docs/MOE.md §4: each term of the budget in bytes, and what the process really peaked at
        "memory": dict(plan, budget=parse_size(args.mem) if args.mem else None,
                       peak_rss=int(_peak_rss_mb() * 1048576)),
    }
    if model.layer_stream_stats is not None:  # a dense model over --mem: its layers are read each token
        res["layer_stream"] = dict(model.layer_stream_stats, window=plan["layer_window"])
    if model.is_moe:
        res["moe"] = dict(model.moe_stats, cache_policy=args.cache_policy, io_threads=args.io_threads,
                          lowbit=args.moe_lowbit, lowbit_threshold=args.moe_lowbit_threshold,
                          n_experts=model.config["n_experts"], n_experts_used=model.config["n_experts_used"],
                          predictor=model.metadata("moe.predictor"))
    if args.json:
        print(json.dumps(res))
    else:
        print(f"prefill {res['prefill_tok_s']:.1f} tok/s, decode {res['decode_tok_s']:.1f} tok/s, "
              f"peak RSS {res['peak_rss_mb']:.0f} MB ({model.threads} threads, kernels {model.kernel_level})")
        if model.is_moe:
            print(f"experts: {_expert_text(model)}")
    return 0


def _read_text(path: str) -> str:
    """The text file's contents; a folder, a missing file or bytes that are not UTF-8 are one clear error."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not a text file")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def cmd_perplexity(args) -> int:
    from . import Model
    from .defaults import ensure_edge
    model = Model(ensure_edge(args.model, quiet=args.json), threads=args.threads, ctx=args.ctx,
                  kernels=args.kernels, adapter=args.adapter, kv=args.kv, **_device_options(args))
    if args.verbose:
        _print_kernels(model, f"--kernels {args.kernels}" if args.kernels else None)
    text = _read_text(args.textfile)
    t0 = time.perf_counter()
    progress, line_open = None, False
    if not args.json and sys.stderr.isatty():  # chunks done and the running perplexity, on one line
        def progress(done: int, total: int, ppl: float) -> None:
            nonlocal line_open
            line_open = done != total
            print(f"\r[{done}/{total}] perplexity {ppl:.4f}", end="" if line_open else "\n", file=sys.stderr, flush=True)
    try:
        res = model.perplexity(text, ctx=args.ctx, chunks=args.chunks, progress=progress)
    except Exception:
        if line_open:  # the error line goes below the progress line, not onto it (Ctrl-C: cli_common's newline)
            print(file=sys.stderr)
        raise
    res["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res))
    else:
        print(f"perplexity {res['ppl']:.4f} over {res['tokens']} tokens ({res['chunks']} chunks of {args.ctx})")
    return 0


def cmd_verify(args) -> int:
    from . import BadFileError, _core
    _core.file_info(args.file)  # header, metadata and table: a file that does not open is bad input (2)
    try:
        print(f"{args.file}: {_core.verify(args.file)}")
    except BadFileError as e:  # it opened, and a tensor's checksum does not match: the check failed (1)
        print(f"edgerun verify: {' '.join(str(e).split())}", file=sys.stderr)
        return cc.EXIT_FAILED
    return 0


def cmd_info(args) -> int:
    model = _load(args)
    _print_kernels(model)
    from . import _core
    info = {"config": model.config, "memory_plan": model.memory_plan, "threads": model.threads, "ctx": model.ctx,
            "gpu": _core.cuda_info()}
    print(json.dumps(info, indent=2))
    if args.device:  # fit and decode roofline on a board profile (device.py)
        from .device import model_device_report
        print("\n".join(model_device_report(model, args.device, args.ram)))
    return 0


def _adapter_arg(sp) -> None:
    sp.add_argument("--adapter", type=cc.adapter_spec, action="append", metavar="A.edge[:SCALE]",
                    help="apply a trained adapter (`edgerun train`) times SCALE (default 1); repeatable: several are "
                         "summed (default: none)")


def _threads_arg(sp) -> None:
    sp.add_argument("--threads", "-t", type=cc.threads, default=None,
                    help=f"worker threads, 1 to {cc.MAX_THREADS_PER_CPU} × the CPUs (default: all {os.cpu_count()} CPUs)")


def _kernels_arg(sp) -> None:
    sp.add_argument("--kernels", default=None,
                    help="kernel level: ref, avx2, avx512, avx512vnni, ... (default: the best this CPU runs)")


def build_parser() -> argparse.ArgumentParser:
    p = cc.ArgumentParser(prog="edgerun", description="Run .edge language models on small machines.",
                                epilog=cc.EXIT_CODES, formatter_class=cc.HelpFormatter)
    cc.add_version(p, "edgerun")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=cc.EXIT_CODES,
                              formatter_class=cc.HelpFormatter)

    def common(sp, model_optional=False, device=True, adapter=True):
        if model_optional:
            sp.add_argument("model", nargs="?", help=".edge file (or GGUF / HF folder, converted once); default: SmolLM2-135M-Instruct")
        else:
            sp.add_argument("model", help=".edge file (or GGUF / HF folder, converted once)")
        _threads_arg(sp)
        sp.add_argument("--mem", type=cc.size, default=None, help="hard memory budget of the whole process, e.g. 1GB "
                        "(this process's own resident set + weights + KV cache + scratch; MoE: experts beyond it are "
                        "streamed from disk through a cache; a dense model over it streams its layers; default: none)")
        sp.add_argument("--ctx", type=cc.positive_int, default=None,
                        help="context length in tokens (KV cache; default: the model's trained context, at most 4096; "
                             "with --mem, the longest up to the trained context that fits)")
        _kv_arg(sp)
        _kernels_arg(sp)
        sp.add_argument("--verbose", "-v", action="store_true", help="print the kernel variants selected")
        if adapter:
            _adapter_arg(sp)
        if device:
            _device_args(sp)
        moe = sp.add_argument_group("MoE expert streaming (docs/MOE.md)")
        moe.add_argument("--cache-policy", choices=("lfru", "lru"), default="lfru", help="expert cache eviction")
        moe.add_argument("--io-threads", type=cc.int_range(1, 64), default=2, help="background expert readers")
        moe.add_argument("--moe-lowbit", choices=("off", "miss"), default="off",
                         help="miss: read a cold expert of low routing weight in the next lower precision "
                              "(default off: results identical to a fully resident run)")
        moe.add_argument("--moe-lowbit-threshold", type=cc.prob_0_1, default=0.2,
                         help="routing weight below which --moe-lowbit miss applies")

    sp = add("chat", "interactive chat")
    common(sp, model_optional=True)
    _sampling_args(sp)
    sp.add_argument("--system", default=None, help="system prompt (default: none)")
    sp.add_argument("--max-tokens", type=cc.n_tokens, default=512,
                    help="at most this many tokens per reply; -1 = until the end of the turn or of the context "
                         "(the oldest turns are dropped to keep this many tokens, or with -1 a quarter of the "
                         "context, free for the reply)")
    sp.add_argument("--stats", action="store_true", help="print tokens/s after each reply")
    sp.set_defaults(fn=cmd_chat)

    sp = add("generate", "complete a prompt")
    common(sp)
    _sampling_args(sp)
    sp.add_argument("--prompt", "-p", required=True, help="the text to complete")
    sp.add_argument("-n", type=cc.n_tokens, default=128,
                    help="tokens to generate; -1 = until the end of the text (EOS) or of the context, as llama.cpp")
    sp.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    sp.add_argument("--json", action="store_true", help="print text, tokens and timing as one JSON object")
    sp.set_defaults(fn=cmd_generate)

    sp = add("serve", "OpenAI-compatible HTTP server (needs edgerun[server])")
    sp.add_argument("model", nargs="?", help=".edge file (or GGUF / HF folder, converted once); default: SmolLM2-135M-Instruct")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=cc.int_range(1, 65535), default=8080, help="TCP port")
    sp.add_argument("--parallel", "-np", type=cc.positive_int, default=1,
                    help="slots: sessions generating at once, each with its own KV cache, decoded in one batched step (default 1)")
    sp.add_argument("--queue", type=cc.int_range(0), default=16, help="requests that may wait for a slot; more get 429 (default 16)")
    sp.add_argument("--mem", type=cc.size, default=None, help="memory budget of the whole server, e.g. 1GB: process + the weights "
                    "(one shared mapping) + every slot's KV cache and scratch; checked before listening (default: no budget)")
    sp.add_argument("--ctx", type=cc.positive_int, default=None, help="context length of each slot (default: the model's, at most 4096; "
                    "with --mem, the longest up to the model's at which every slot fits)")
    _kv_arg(sp)
    sp.add_argument("--threads", "-t", type=cc.threads, default=None, help="threads of the model, which steps every slot at once (default: all CPUs)")
    sp.add_argument("--kernels", default=None, help="kernel level (ref, avx2, avx512, avx512vnni; default: the best this CPU runs)")
    sp.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY (or set EDGERUN_API_KEY; default: no key)")
    sp.add_argument("--alias", default=None, help="the model's name in the API (default: the file's name)")
    _adapter_arg(sp)
    sp.set_defaults(fn=cmd_serve)

    sp = add("bench", "prefill / decode speed and peak memory")
    common(sp)
    sp.add_argument("--prompt-tokens", type=cc.positive_int, default=256, help="random prompt tokens to prefill")
    sp.add_argument("--gen-tokens", type=cc.positive_int, default=128, help="tokens to decode (greedy)")
    sp.add_argument("--repeat", type=cc.positive_int, default=3, help="runs; medians are reported")
    sp.add_argument("--seed", type=SEED, default=0, help="seed of the random prompt")
    sp.add_argument("--json", action="store_true", help="print every measurement as one JSON object")
    sp.set_defaults(fn=cmd_bench)

    sp = add("perplexity", "perplexity of a text file (llama.cpp protocol)")
    sp.add_argument("model", help=".edge file (or GGUF / HF folder, converted once)")
    sp.add_argument("textfile", help="UTF-8 text to score")
    sp.add_argument("--ctx", type=cc.int_range(4), default=512,
                    help="tokens per chunk (the second half of each is scored)")
    sp.add_argument("--chunks", type=cc.positive_int, default=None,
                    help="score at most this many chunks (default: all of the text)")
    _kv_arg(sp)
    _threads_arg(sp)
    _kernels_arg(sp)
    sp.add_argument("--verbose", "-v", action="store_true", help="print the kernel variants selected")
    _adapter_arg(sp)
    _device_args(sp)
    sp.add_argument("--json", action="store_true", help="print the result as one JSON object (no progress line)")
    sp.set_defaults(fn=cmd_perplexity)

    from .train_cli import add_train_parser
    add_train_parser(add("train", "fine-tune an adapter on text or chat records (docs/TRAINING.md)"))

    sp = add("verify", "check every checksum of an .edge file")
    sp.add_argument("file", help=".edge file")
    sp.set_defaults(fn=cmd_verify)

    sp = add("info", "model configuration, memory plan, kernels and GPU")
    common(sp, model_optional=True, device=False, adapter=False)
    sp.add_argument("--device", help="also report fit and decode roofline on a board profile (rpi5, spacemit-k1, "
                    "...; default: none)")
    sp.add_argument("--ram", type=cc.positive_float,
                    help="with --device: the board's RAM in GB (default: its smallest option)")
    sp.set_defaults(fn=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cc.run_main("edgerun", args.fn, args)


def entry() -> None:
    """The console script: main() on sys.argv, then the process's exit (cli_common.exit_process)."""
    cc.exit_process(main())


if __name__ == "__main__":
    entry()
