"""The body-size limit and the request deadline, as plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request in task groups and memory streams; it
measured as the largest single cost of a small request here. These classes only look at headers,
count bytes and arm one timer, and answer in the common error shape themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

from serving.http.errors import error_body, problem

Scope = dict[str, Any]


async def _answer(send: Any, status: int, field: str, text: str) -> None:
    body = orjson.dumps(error_body([problem(field, text)]))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Answer 413 to bodies over ``max_bytes()``, whether declared by Content-Length or streamed.

    A declared length is checked from the header; a body sent without one (chunked) is read up to
    the limit before the app sees it, so it too gets a 413 rather than whatever the app makes of a
    cut-off read, and memory never holds more than the limit. The limit is a callable so that it
    is read from the service's configuration when the service starts, not when the app is built.
    """

    def __init__(self, app: Any, max_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Check the declared length, or read and count a streamed body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await _answer(send, 413, "body", f"body larger than {limit} bytes")
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                await _answer(send, 413, "body", f"body larger than {limit} bytes")
                return
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], None, receive), send)


def _replay(messages: list[dict[str, Any]], last: dict[str, Any] | None, receive: Any) -> Any:
    """A receive callable giving ``messages`` (then ``last``) before the real ones."""
    queue = [*messages, *([last] if last else [])]

    async def replayed() -> dict[str, Any]:
        return queue.pop(0) if queue else await receive()

    return replayed


class Deadline:
    """Answer 408 when the body is still arriving after ``seconds()``, 504 when the answer is late.

    BentoML's own traffic timeout (set longer, as a backstop) answers in its own shape; this one
    fires first and answers in the common one. A request already answering is left to finish.
    """

    def __init__(self, app: Any, seconds: Callable[[], float]) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Run the request under one timer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = scope.get("method") in ("GET", "HEAD")
        started = False

        async def tracking_receive() -> dict[str, Any]:
            nonlocal body_done
            message = await receive()
            body_done = body_done or not message.get("more_body", False)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        seconds = self.seconds()
        try:
            async with asyncio.timeout(seconds):
                await self.app(scope, tracking_receive, tracking_send)
        except TimeoutError:
            if started:
                raise
            if not body_done:
                await _answer(send, 408, "body", f"the body did not arrive within {seconds:g} s")
            else:
                await _answer(send, 504, "", f"no answer within {seconds:g} s; retry later")
