"""edgerun command line: chat, generate, serve, bench, perplexity, verify, info."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

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
                  kernels=getattr(args, "kernels", None), mem_scope="process", **_device_options(args), **_moe_options(args))
    if getattr(args, "verbose", False):
        _print_kernels(model, f"--kernels {args.kernels}" if getattr(args, "kernels", None) else None)
    return model


def _device_options(args) -> dict:
    """Model keyword arguments of --device / --gpu-mem (the info command's --device names a board instead)."""
    return dict(device=getattr(args, "compute_device", "cpu"), gpu_mem=getattr(args, "gpu_mem", None))


def _device_args(sp) -> None:
    g = sp.add_argument_group("device")
    g.add_argument("--device", dest="compute_device", choices=("cpu", "cuda"), default="cpu",
                   help="where the model runs (default cpu); cuda: the first NVIDIA GPU, the same .edge file "
                        "(the CUDA backend plugin, loaded only when asked for)")
    g.add_argument("--gpu-mem", default=None,
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
    g.add_argument("--repeat-penalty", type=float, default=1.0,
                   help="divide the positive logits (multiply the negative ones) of tokens seen in the last 64 tokens "
                        "by this; 1.0 = off (default 1.0)")
    g.add_argument("--top-k", type=int, default=40, help="keep only the K most likely tokens; 0 = off (default 40)")
    g.add_argument("--top-p", type=float, default=0.95,
                   help="then keep the most likely tokens whose probabilities sum to P; 1.0 = off (default 0.95)")
    g.add_argument("--min-p", type=float, default=0.05,
                   help="then drop tokens less likely than P times the most likely one; 0 = off (default 0.05)")
    g.add_argument("--temp", type=float, default=0.8,
                   help="temperature of the final draw: lower is more focused, 0 = greedy, deterministic "
                        "(default 0.8)")
    g.add_argument("--seed", type=int, default=0,
                   help="random seed of the draw; the same seed gives the same text (default 0)")


def _sampling(args) -> dict:
    return dict(temperature=args.temp, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                repeat_penalty=args.repeat_penalty, seed=args.seed)


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
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
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
        prompt = template.render(messages, add_generation_prompt=True)
        ids = model.tokenize(prompt, add_bos=False)
        if len(ids) + args.max_tokens > model.ctx:
            print("(context full: conversation cleared)", file=sys.stderr)
            messages = (messages[:1] if args.system else []) + [messages[-1]]
            model.reset()
            ids = model.tokenize(template.render(messages), add_bos=False)
        model.moe_reset_stats()
        reply, t0, n = [], time.perf_counter(), []
        try:
            for piece in model.generate(ids, args.max_tokens, stop_ids=stop, tokens_out=n, **_sampling(args)):
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
    for piece in model.generate(ids, args.n, tokens_out=out_ids, **_sampling(args)):
        pieces.append(piece)
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
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


def cmd_perplexity(args) -> int:
    from . import Model
    from .defaults import ensure_edge
    model = Model(ensure_edge(args.model, quiet=args.json), threads=args.threads, ctx=args.ctx,
                  kernels=args.kernels, **_device_options(args))
    if args.verbose:
        _print_kernels(model, f"--kernels {args.kernels}" if args.kernels else None)
    with open(args.textfile, encoding="utf-8") as f:
        text = f.read()
    t0 = time.perf_counter()
    res = model.perplexity(text, ctx=args.ctx, chunks=args.chunks)
    res["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res))
    else:
        print(f"perplexity {res['ppl']:.4f} over {res['tokens']} tokens ({res['chunks']} chunks of {args.ctx})")
    return 0


def cmd_verify(args) -> int:
    from . import _core
    try:
        print(f"{args.file}: {_core.verify(args.file)}")
    except (ValueError, OSError) as e:
        print(f"edgerun verify: {e}", file=sys.stderr)
        return 1
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerun", description="Run .edge language models on small machines.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, model_optional=False, device=True):
        if model_optional:
            sp.add_argument("model", nargs="?", help=".edge file (or GGUF / HF folder, converted once); default: SmolLM2-135M-Instruct")
        else:
            sp.add_argument("model", help=".edge file (or GGUF / HF folder, converted once)")
        sp.add_argument("--threads", "-t", type=int, default=None, help="worker threads (default: all CPUs)")
        sp.add_argument("--mem", default=None, help="hard memory budget of the whole process, e.g. 1GB (this process's "
                        "own resident set + weights + KV cache + scratch; MoE: experts beyond it are streamed from disk "
                        "through a cache; a dense model over it streams its layers)")
        sp.add_argument("--ctx", type=int, default=None, help="context length (KV cache)")
        sp.add_argument("--kernels", default=None, help="kernel level (ref, avx2, avx512, avx512vnni)")
        sp.add_argument("--verbose", "-v", action="store_true", help="print the kernel variants selected")
        if device:
            _device_args(sp)
        moe = sp.add_argument_group("MoE expert streaming (docs/MOE.md)")
        moe.add_argument("--cache-policy", choices=("lfru", "lru"), default="lfru", help="expert cache eviction")
        moe.add_argument("--io-threads", type=int, default=2, help="background expert readers (default 2)")
        moe.add_argument("--moe-lowbit", choices=("off", "miss"), default="off",
                         help="miss: read a cold expert of low routing weight in the next lower precision "
                              "(default off: results identical to a fully resident run)")
        moe.add_argument("--moe-lowbit-threshold", type=float, default=0.2,
                         help="routing weight below which --moe-lowbit miss applies (default 0.2)")

    sp = sub.add_parser("chat", help="interactive chat")
    common(sp, model_optional=True)
    _sampling_args(sp)
    sp.add_argument("--system", default=None, help="system prompt")
    sp.add_argument("--max-tokens", type=int, default=512)
    sp.add_argument("--stats", action="store_true", help="print tokens/s after each reply")
    sp.set_defaults(fn=cmd_chat)

    sp = sub.add_parser("generate", help="complete a prompt")
    common(sp)
    _sampling_args(sp)
    sp.add_argument("--prompt", "-p", required=True)
    sp.add_argument("-n", type=int, default=128, help="tokens to generate")
    sp.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_generate)

    sp = sub.add_parser("serve", help="OpenAI-compatible HTTP server (needs edgerun[server])")
    sp.add_argument("model", nargs="?", help=".edge file (or GGUF / HF folder, converted once); default: SmolLM2-135M-Instruct")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--parallel", "-np", type=int, default=1,
                    help="slots: sessions generating at once, each with its own KV cache (default 1)")
    sp.add_argument("--queue", type=int, default=16, help="requests that may wait for a slot; more get 429 (default 16)")
    sp.add_argument("--mem", default=None, help="memory budget of the whole server, e.g. 1GB: process + the weights "
                    "(one shared mapping) + every slot's KV cache and scratch; checked before listening")
    sp.add_argument("--ctx", type=int, default=None, help="context length of each slot")
    sp.add_argument("--threads", "-t", type=int, default=None, help="threads per slot (default: CPUs / --parallel)")
    sp.add_argument("--kernels", default=None, help="kernel level (ref, avx2, avx512, avx512vnni)")
    sp.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY (or set EDGERUN_API_KEY)")
    sp.add_argument("--alias", default=None, help="the model's name in the API (default: the file's name)")
    sp.set_defaults(fn=cmd_serve)

    sp = sub.add_parser("bench", help="prefill / decode speed and peak memory")
    common(sp)
    sp.add_argument("--prompt-tokens", type=int, default=256)
    sp.add_argument("--gen-tokens", type=int, default=128)
    sp.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_bench)

    sp = sub.add_parser("perplexity", help="perplexity of a text file (llama.cpp protocol)")
    sp.add_argument("model")
    sp.add_argument("textfile")
    sp.add_argument("--ctx", type=int, default=512)
    sp.add_argument("--chunks", type=int, default=None, help="score at most this many chunks")
    sp.add_argument("--threads", "-t", type=int, default=None)
    sp.add_argument("--kernels", default=None)
    sp.add_argument("--verbose", "-v", action="store_true", help="print the kernel variants selected")
    _device_args(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_perplexity)

    sp = sub.add_parser("verify", help="check every checksum of an .edge file")
    sp.add_argument("file")
    sp.set_defaults(fn=cmd_verify)

    sp = sub.add_parser("info", help="model configuration, memory plan, kernels and GPU")
    common(sp, model_optional=True, device=False)
    sp.add_argument("--device", help="also report fit and decode roofline on a board profile (rpi5, spacemit-k1, ...)")
    sp.add_argument("--ram", type=float, help="with --device: the board's RAM in GB (default: its smallest option)")
    sp.set_defaults(fn=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import EdgeError
    try:
        return args.fn(args) or 0
    except (EdgeError, FileNotFoundError, ValueError) as e:
        print(f"edgerun: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
