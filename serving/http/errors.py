"""The one error shape: ``{"errors": [{"record", "field", "problem"}]}`` for every 4xx and 5xx.

Every layer that refuses a request (routing, the content type, the body's size and parsing, the
keys, pydantic, the model's signature, the stores) answers through here, so a client parses one
shape whatever went wrong, and ``serving.http.openapi`` can document it once.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import ORJSONResponse as JSONResponse


class ApiError(Exception):
    """An error answer raised from anywhere below a route."""

    def __init__(
        self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def problem(field: str, text: str, record: int | None = None) -> dict[str, Any]:
    """One entry of an error answer."""
    return {"record": record, "field": field, "problem": text}


def error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of an error answer."""
    return {"errors": errors}


def error_response(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error answer every endpoint gives."""
    return JSONResponse(error_body(errors), status_code=status, headers=headers)


class CommonShape:
    """ASGI middleware giving BentoML's own plain-text 404 and 405 the common shape.

    BentoML mounts the service's app so that it only receives paths the app has a route for; any
    other path is answered by BentoML's router as ``Not Found`` in plain text. This rewrites
    such answers (never a JSON one, which is the app's own) on their way out.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, replacing a plain-text 404 or 405 answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def shaping_send(message: dict[str, Any]) -> None:
            nonlocal replaced
            if replaced:
                return  # the original body of a replaced answer
            if message["type"] == "http.response.start" and message["status"] in (404, 405):
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(b"application/json"):
                    replaced = True
                    await _send_shaped(send, scope, message["status"], headers.get(b"allow"))
                    return
            await send(message)

        await self.app(scope, receive, shaping_send)


async def _send_shaped(send: Any, scope: dict[str, Any], status: int, allow: bytes | None) -> None:
    if status == 404:
        error = problem("path", f"no endpoint {scope['path']}")
    else:
        error = problem("method", f"{scope['method']} is not allowed on {scope['path']}")
    body = orjson.dumps(error_body([error]))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
