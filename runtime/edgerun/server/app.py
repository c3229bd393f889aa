"""The OpenAI-compatible routes (Starlette): /v1/chat/completions, /v1/completions, /v1/models, /health,
/metrics and the chat page at /. A request takes a slot (slots.py); its generation runs in the batching
scheduler (scheduler.py), which steps every busy slot in one batched eval."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
import uuid
from dataclasses import dataclass, field

from jinja2 import TemplateError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..chat import template_for
from . import generation, params, sse
from .errors import APIError, error_response
from .logprobs import chat_logprobs, completion_logprobs
from .metrics import Metrics
from .plan import SlotPlan
from .scheduler import Scheduler
from .slots import QueueFull, SlotPool, SlotSequence

MAX_BODY = 1 << 20          # bytes; larger bodies get 413
DRAIN_CAP = 64 << 20        # a larger body is not read to its end (the connection is closed)
PAGE = os.path.join(os.path.dirname(__file__), "page.html")


@dataclass
class Server:
    seqs: list[SlotSequence]    # the slots' KV sequences, all of one model (plan.load_slots)
    plan: SlotPlan
    model_id: str
    api_key: str | None = None
    max_queue: int = 16
    metrics: Metrics = field(default_factory=Metrics)
    draining: bool = False      # SIGTERM: new requests get 503 while the running ones finish

    def __post_init__(self):
        m = self.model = self.seqs[0].model
        self.pool = SlotPool.of(self.seqs, self.max_queue)
        self.scheduler = Scheduler(m)
        self.executor = self.scheduler.executor  # the scheduler's thread (shut down after the server stops)
        self.template = template_for(m)
        self.eos = {m.eos_id} - {-1}
        end_turn = m.tokenize("<|im_end|>", add_bos=False) if m._m.has_tokenizer else []
        self.chat_stops = self.eos | ({end_turn[0]} if len(end_turn) == 1 else set())
        self.created = int(time.time())
        self.jobs: set = set()  # live generation jobs (cancelled on shutdown)


async def read_body(request: Request) -> bytes:
    """The body, or 413 past MAX_BODY (read on to DRAIN_CAP so that the client receives the answer)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > DRAIN_CAP:
        raise APIError(413, f"the request body of {declared} bytes is over the limit of {MAX_BODY}", code="body_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size <= MAX_BODY:
                chunks.append(chunk)
            elif size > DRAIN_CAP:
                break
    except ClientDisconnect:
        raise APIError(400, "the client went away while sending the body") from None
    if size > MAX_BODY:
        raise APIError(413, f"the request body of {size} bytes is over the limit of {MAX_BODY}", code="body_too_large")
    return b"".join(chunks)


async def until_disconnect(request: Request) -> None:
    """Returns when the client has gone (its body was read before: receive() then waits for the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def check_key(srv: Server, request: Request) -> None:
    if not srv.api_key:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(given.encode(), srv.api_key.encode()):
        raise APIError(401, "missing or wrong API key (send Authorization: Bearer <key>)", code="invalid_api_key")


def check_model(srv: Server, obj: dict) -> None:
    name = obj.get("model")
    if not isinstance(name, str):
        raise APIError(400, "'model' must be a string", param="model", code="invalid_value")
    if name != srv.model_id:
        raise APIError(404, f"the model '{name}' does not exist; this server serves '{srv.model_id}'", param="model",
                       code="model_not_found")


async def completion(request: Request, chat: bool) -> Response:
    srv: Server = request.app.state.server
    check_key(srv, request)
    if srv.draining:
        raise APIError(503, "the server is shutting down", code="server_shutting_down")
    obj = params.parse_json(await read_body(request))
    check_model(srv, obj)
    max_tokens, sampling, stops, stream = params.sampling(obj)
    top = params.logprobs(obj, chat)
    model = srv.model
    if chat:
        try:
            text = srv.template.render(params.messages(obj), add_generation_prompt=True)
        except TemplateError as e:  # the model's template refuses this conversation (e.g. roles out of order)
            raise APIError(400, f"the chat template refused the messages: {e}", param="messages",
                           code="invalid_value") from None
        ids = model.tokenize(text, add_bos=False)
    else:
        p = params.prompt(obj)
        ids = model.tokenize(p) if isinstance(p, str) else list(p)
        if any(not 0 <= t < model.vocab_size for t in ids):
            raise APIError(400, f"prompt token ids must be in [0, {model.vocab_size})", param="prompt", code="invalid_value")
    if not ids:
        raise APIError(400, "the prompt is empty after tokenization", param="prompt", code="invalid_value")
    if len(ids) + 1 > model.ctx:
        raise APIError(400, f"the prompt has {len(ids)} tokens; this server's context is {model.ctx} tokens",
                       param="messages" if chat else "prompt", code="context_length_exceeded")
    job = generation.Job(ids, max_tokens, sampling, srv.chat_stops if chat else srv.eos, stops, logprobs=top)
    try:
        slot = await srv.pool.acquire(ids)
    except QueueFull as e:
        raise APIError(429, str(e), code="queue_full") from None
    loop = asyncio.get_running_loop()
    q, fut = srv.scheduler.submit(loop, slot.seq, job)
    srv.jobs.add(job)

    def finished(f):
        srv.jobs.discard(job)
        srv.pool.release(slot)
        if not f.cancelled() and f.exception() is None:
            srv.metrics.count_result(f.result())
    fut.add_done_callback(finished)

    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    head = dict(id=rid, object="chat.completion" if chat else "text_completion", created=int(time.time()),
                model=srv.model_id)

    def usage(res):
        return {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens,
                "total_tokens": res.prompt_tokens + res.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": res.cached_tokens}}

    def reason(res):
        return "stop" if res.finish_reason == "stop" else "length"

    if not stream:
        gone = asyncio.ensure_future(until_disconnect(request))
        pieces, entries = [], []
        try:
            while True:
                get = asyncio.ensure_future(q.get())
                await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():  # the client went away: stop generating, answer no one
                    get.cancel()
                    job.cancel.set()
                    return Response(status_code=499)
                kind, value = get.result()
                if kind == "text":
                    pieces.append(value)
                elif kind == "logprobs":
                    entries.extend(value)
                else:
                    res = value
                    break
        except asyncio.CancelledError:
            job.cancel.set()
            raise
        finally:
            gone.cancel()
        if res.error:
            raise APIError(500, f"generation failed: {res.error}", code="internal_error")
        text = "".join(pieces)
        lp = None
        if top is not None:
            lp = chat_logprobs(model, entries) if chat else completion_logprobs(model, entries)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": lp} if chat
                  else {"index": 0, "text": text, "logprobs": lp})
        choice["finish_reason"] = reason(res)
        return JSONResponse(dict(head, choices=[choice], usage=usage(res)))

    include_usage = bool((obj.get("stream_options") or {}).get("include_usage")) if isinstance(
        obj.get("stream_options"), dict) else False
    head["object"] = "chat.completion.chunk" if chat else "text_completion"

    offset = [0]  # completions' text_offset: characters streamed so far

    def chunk(delta_text=None, finish=None, first=False, entries=None):
        lp = None
        if entries:
            lp = chat_logprobs(model, entries) if chat else completion_logprobs(model, entries, offset[0])
        if delta_text:
            offset[0] += len(delta_text)
        if chat:
            delta = {"role": "assistant", "content": ""} if first else ({"content": delta_text} if delta_text else {})
            c = {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
        else:
            c = {"index": 0, "text": delta_text or "", "logprobs": lp, "finish_reason": finish}
        return sse.event(dict(head, choices=[c]))

    async def events():
        entries = []
        try:
            if chat:
                yield chunk(first=True)
            while True:
                kind, value = await q.get()
                if kind == "logprobs":
                    entries = value
                    continue
                if kind == "text":
                    yield chunk(value, entries=entries)
                    entries = []
                    continue
                res = value
                if res.error:
                    yield sse.event(APIError(500, f"generation failed: {res.error}").body())
                else:
                    yield chunk(finish=reason(res))
                    if include_usage:
                        yield sse.event(dict(head, choices=[], usage=usage(res)))
                yield sse.DONE
                return
        finally:
            job.cancel.set()

    # a client that goes away stops the generation at its next token; the slot frees itself when it ends
    return sse.SSEResponse(events(), job.cancel.set)


async def chat_completions(request: Request) -> Response:
    return await completion(request, chat=True)


async def completions(request: Request) -> Response:
    return await completion(request, chat=False)


async def models(request: Request) -> Response:
    srv: Server = request.app.state.server
    check_key(srv, request)
    return JSONResponse({"object": "list", "data": [
        {"id": srv.model_id, "object": "model", "created": srv.created, "owned_by": "edgerun",
         "context_length": srv.model.ctx}]})


async def health(request: Request) -> Response:
    srv: Server = request.app.state.server
    return JSONResponse({"status": "draining" if srv.draining else "ok", "slots": len(srv.pool.slots),
                         "slots_busy": srv.pool.busy, "queue_length": srv.pool.queued},
                        status_code=503 if srv.draining else 200)


async def metrics(request: Request) -> Response:
    srv: Server = request.app.state.server
    check_key(srv, request)
    return PlainTextResponse(srv.metrics.render(srv.pool, srv.plan, [srv.model], srv.scheduler),
                             media_type="text/plain; version=0.0.4")


async def plan(request: Request) -> Response:
    """The memory plan for the chat page: the numbers and one line of text."""
    srv: Server = request.app.state.server
    return JSONResponse(dict(srv.plan.as_dict(), text=srv.plan.describe(), model=srv.model_id,
                             ctx=srv.model.ctx, tok_s=srv.metrics.last_tok_s))


async def page(request: Request) -> Response:
    with open(PAGE, encoding="utf-8") as f:
        return HTMLResponse(f.read())


async def on_api_error(request: Request, e: APIError) -> Response:
    return error_response(e)


async def on_internal_error(request: Request, e: Exception) -> Response:
    return error_response(APIError(500, f"internal error: {type(e).__name__}: {e}", code="internal_error"))


async def on_http_error(request: Request, e: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
    return error_response(APIError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code))


def build_app(srv: Server) -> Starlette:
    routes = [Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/health", health, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]),
              Route("/plan", plan, methods=["GET"])]
    if os.path.exists(PAGE):
        routes.append(Route("/", page, methods=["GET"]))
    app = Starlette(routes=routes, middleware=[Middleware(CountRequests, srv=srv, paths={r.path for r in routes})],
                    exception_handlers={APIError: on_api_error, HTTPException: on_http_error,
                                        Exception: on_internal_error})
    app.state.server = srv
    return app


class CountRequests:
    """ASGI middleware: counts every HTTP response by route and status (GET /metrics)."""

    def __init__(self, app, srv: Server, paths: set):
        self.app, self.srv, self.paths = app, srv, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in self.paths else "other"

        async def counting_send(msg):
            if msg["type"] == "http.response.start":
                self.srv.metrics.count_request(path, msg["status"])
            await send(msg)
        await self.app(scope, receive, counting_send)
