"""Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk, then `data: [DONE]\n\n`.

SSEResponse is a plain ASGI response that sends an async iterator of chunks while it watches for the
client's http.disconnect; on a disconnect (or a failed send, or the end) it calls on_close() at once, so
the generation behind the stream stops at its next token and frees its slot.
"""

from __future__ import annotations

import asyncio
import json

DONE = b"data: [DONE]\n\n"
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]


def event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class SSEResponse:
    def __init__(self, chunks, on_close):
        self.chunks, self.on_close = chunks, on_close
        self.status_code = 200

    async def _send_all(self, send):
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _until_disconnect(self, receive):
        while (await receive())["type"] != "http.disconnect":
            pass

    async def __call__(self, scope, receive, send):
        sender = asyncio.ensure_future(self._send_all(send))
        watcher = asyncio.ensure_future(self._until_disconnect(receive))
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.on_close()
            for t in (sender, watcher):
                t.cancel()
            await asyncio.gather(sender, watcher, return_exceptions=True)
            aclose = getattr(self.chunks, "aclose", None)
            if aclose:
                await aclose()
        if sender.done() and not sender.cancelled() and sender.exception() is not None:
            exc = sender.exception()
            if not isinstance(exc, OSError):
                raise exc
