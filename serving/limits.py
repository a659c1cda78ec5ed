"""A body-size limit as plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request in task groups and memory streams; it
measured as the largest single cost of a small request here. This class only looks at headers and
counts bytes as they arrive, so a declared or streamed oversized body gets a 413 and is never read
into memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]


class BodyTooLargeError(Exception):
    """A streamed body went past the limit."""


class BodySizeLimit:
    """Answer 413 to bodies over ``max_bytes()``, whether declared by Content-Length or streamed.

    The limit is a callable so that it is read from the service's configuration when the service
    starts, not when the app is built at import.
    """

    def __init__(self, app: Any, max_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Check the declared length, then count streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send, limit)
            return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Any, limit: int) -> None:
        problem = f"body larger than {limit} bytes"
        body = json.dumps({"errors": [{"record": None, "field": "body", "problem": problem}]})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
