"""`edgerun serve`: plan N slots inside --mem before listening, then serve until SIGINT / SIGTERM.

SIGTERM (uvicorn's handler) stops accepting connections, lets running and queued requests finish (at most
DRAIN_S seconds; then their generations are cancelled) and exits 0; a request that still arrives on an open
connection meanwhile gets 503.
"""

from __future__ import annotations

import os
import signal
import sys

DRAIN_S = 30


def model_id(args, path: str) -> str:
    if args.alias:
        return args.alias
    if not args.model:
        from ..defaults import GGUF_NAME
        return GGUF_NAME.split(".")[0]
    name = os.path.basename(os.path.normpath(args.model))
    return name[:-5] if name.endswith(".edge") else name


def build(args):
    """(Server, uvicorn.Config) for parsed `edgerun serve` arguments; the slots are loaded here."""
    try:
        import uvicorn
        from .app import Server, build_app
    except ImportError as e:
        raise ValueError(f"edgerun serve needs the server extra: pip install 'edgerun[server]' ({e})") from None
    from ..defaults import default_model, ensure_edge
    from ..sizes import parse_size
    from .plan import load_slots

    path = ensure_edge(args.model) if args.model else default_model()
    threads = args.threads or (os.cpu_count() or 1)  # one model steps every slot at once
    seqs, plan = load_slots(path, args.parallel, parse_size(args.mem) or None, args.ctx, threads,
                            kernels=args.kernels, adapter=getattr(args, "adapter", None), kv=args.kv)
    srv = Server(seqs, plan, model_id(args, path), api_key=args.api_key or os.environ.get("EDGERUN_API_KEY"),
                 max_queue=args.queue)
    config = uvicorn.Config(build_app(srv), host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=DRAIN_S, lifespan="off")
    return srv, config


def run(args) -> int:
    import uvicorn
    srv, config = build(args)
    print(f"edgerun serve: {srv.model_id} on http://{args.host}:{args.port} — {srv.plan.describe()}; "
          f"{threads_text(srv)}, ctx {srv.model.ctx}, queue {args.queue}"
          + (", API key required" if srv.api_key else ""), file=sys.stderr, flush=True)
    server = uvicorn.Server(config)
    handle_exit = server.handle_exit

    def draining(sig, frame):
        srv.draining = True
        handle_exit(sig, frame)
    server.handle_exit = draining
    # uvicorn handles SIGINT / SIGTERM while it runs (drain, then shut down) and re-raises the signal to the
    # handler it found: a quiet one, so that a drained server exits 0 instead of dying of the signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        for job in list(srv.jobs):
            job.cancel.set()
        srv.executor.shutdown(wait=True)
    return 0


def threads_text(srv) -> str:
    return f"{len(srv.seqs)} slot(s) batched on {srv.model.threads} threads"
