"""`edgerun train`: the command line of edgerun.train (train/loop.py). Options are checked by the argparse types
of cli_common (one line, exit 2); errors while training are one line through cli_common.run_main (exit 2 for
bad input, 1 for an internal error, 130 for Ctrl-C — the adapter and checkpoint are written atomically, so an
interrupted run leaves the last complete save or nothing, never a half-written file)."""

from __future__ import annotations

import json
import sys

from . import cli_common as cc
from .train.adapter import TARGETS
from .train.loop import METHODS, OPTIMIZERS, SCHEDULES


def cmd_train(args) -> int:
    from .defaults import ensure_edge
    from .train.loop import train

    if args.steps is None and args.epochs is None:
        args.steps = 100
    json_out = args.json
    progress = not json_out and sys.stderr.isatty()

    def on_log(rec: dict) -> None:
        if json_out:
            print(json.dumps(rec), flush=True)
        elif not progress:
            print(f"step {rec['step']}: loss {rec['loss']:.4f}, {rec['tok_s']:.0f} tok/s, "
                  f"peak RSS {rec['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)

    res = train(ensure_edge(args.model, quiet=json_out), args.data, args.output, method=args.method, rank=args.rank,
                alpha=args.alpha if args.alpha is not None else 2.0 * args.rank, targets=args.targets, lr=args.lr,
                steps=args.steps, epochs=args.epochs, batch=args.batch, seq=args.seq, grad_accum=args.grad_accum,
                optimizer=args.optimizer, seed=args.seed, mem=args.mem, threads=args.threads, eval_data=args.eval,
                save_every=args.save_every, resume=args.resume, warmup=args.warmup, schedule=args.schedule,
                weight_decay=args.weight_decay, sparse_fraction=args.sparse_fraction, log_every=args.log_every,
                momentum=args.momentum, dtype=args.dtype,
                on_log=on_log, progress=progress,
                message=lambda m: print(f"edgerun train: {m}", file=sys.stderr, flush=True))
    if json_out:
        print(json.dumps({"result": {k: v for k, v in res.items() if k != "memory_plan"},
                          "memory_plan": res["memory_plan"]}), flush=True)
    else:
        ev = ""
        if "eval_ppl_after" in res:
            before = res.get("eval_ppl_before")
            ev = f", eval perplexity {before:.3f} -> {res['eval_ppl_after']:.3f}" if before else \
                f", eval perplexity {res['eval_ppl_after']:.3f}"
        print(f"{res['adapter']}: {res['steps']} steps, loss {res['first_loss'] if 'first_loss' in res else float('nan'):.4f} -> "
              f"{res['loss']:.4f}{ev}, {res['tokens_per_s']:.0f} tok/s, peak RSS {res['peak_rss_mb']:.0f} MB")
    return 0


def add_train_parser(sp) -> None:
    sp.add_argument("model", help=".edge file (or GGUF / HF folder, converted once)")
    sp.add_argument("--data", required=True, help="training data: plain UTF-8 text (cut into --seq windows) or .jsonl "
                    "chat records {\"messages\": [...]} (rendered with the model's chat template; only assistant "
                    "tokens are scored)")
    sp.add_argument("-o", "--output", required=True, help="the adapter to write (atomically; its checkpoint for "
                    "--resume is OUTPUT.ckpt)")
    sp.add_argument("--method", choices=METHODS, default="lora", help="lora: low-rank A, B per target; bias: a bias "
                    "delta per target; sparse: the most useful part of those, measured first; mezo: LoRA trained "
                    "with two forward passes per step (no backward, memory of inference)")
    sp.add_argument("--rank", type=cc.int_range(1, 4096), default=8, help="LoRA rank")
    sp.add_argument("--alpha", type=cc.positive_float, default=None, help="LoRA alpha; scale = alpha / rank "
                    "(default: 2 × rank)")
    sp.add_argument("--targets", type=cc.comma_list(tuple(TARGETS)), default=("q", "v"),
                    help=f"matrices to adapt, comma-separated from {','.join(TARGETS)} (default: q,v)")
    sp.add_argument("--lr", type=cc.positive_float, default=1e-4, help="peak learning rate")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--steps", type=cc.positive_int, default=None, help="optimizer steps (default 100 unless --epochs)")
    g.add_argument("--epochs", type=cc.positive_int, default=None, help="passes over the data instead of --steps (default: none)")
    sp.add_argument("--batch", type=cc.int_range(1, 1024), default=4, help="windows per micro-batch")
    sp.add_argument("--seq", type=cc.int_range(2, 1 << 16), default=256, help="tokens per window")
    sp.add_argument("--grad-accum", type=cc.int_range(1, 4096), default=1, help="micro-batches per optimizer step")
    sp.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw", help="optimizer")
    sp.add_argument("--weight-decay", type=cc.nonneg_float, default=0.0, help="AdamW weight decay")
    sp.add_argument("--momentum", type=cc.float_range(0.0, 0.999999), default=0.0,
                    help="--optimizer sgd: momentum (torch.optim.SGD's, dampening 0)")
    sp.add_argument("--dtype", choices=("f32", "bf16"), default="f32",
                    help="trainable parameters: f32, or bf16 in the step with an f32 master copy")
    sp.add_argument("--warmup", type=cc.nonneg_int, default=0, help="steps of linear learning-rate warm-up")
    sp.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning rate after the warm-up")
    sp.add_argument("--sparse-fraction", type=cc.float_range(0.0, 1.0, lo_open=True), default=0.25,
                    help="--method sparse: the fraction of candidate tensors trained")
    sp.add_argument("--seed", type=cc.int_range(0, 2**63 - 1), default=0, help="seed of the initialisation and data order")
    sp.add_argument("--mem", type=cc.size, default=None, help="memory budget of the training run, e.g. 512MB: checked "
                    "before the first step, saying what does not fit (default: none)")
    sp.add_argument("--threads", "-t", type=cc.threads, default=None, help="worker threads (default: all CPUs)")
    sp.add_argument("--eval", default=None, metavar="FILE", help="held-out data (same formats as --data): its "
                    "perplexity before and after, and at every save (default: none)")
    sp.add_argument("--save-every", type=cc.nonneg_int, default=0, help="save the adapter and its checkpoint every N "
                    "steps; 0 = at the end only")
    sp.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt (same settings and data)")
    sp.add_argument("--log-every", type=cc.positive_int, default=1, help="steps between log records")
    sp.add_argument("--json", action="store_true", help="one JSON record per logged step on stdout, then the result")
    sp.set_defaults(fn=cmd_train)
