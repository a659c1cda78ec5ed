"""Request bodies parsed with orjson, not the standard library.

The standard library's parser took a sixth of the service's CPU on 100-record bodies (py-spy
under load). orjson refuses ``NaN`` and ``Infinity``, which the standard library reads; a body
orjson refuses is read again with the standard library, so a non-finite feature still gets a 422
naming its record and field rather than a 400 for the whole body, and malformed JSON still gets
the 400. orjson also reads an integer past 64 bits as a float, which could move a value just past
a documented bound onto it; a body with a run of 20 digits goes to the standard library, which
keeps integers exact. A body declared as anything but JSON is refused with a 415 naming its
type; a body with no declared type is read as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from serving.http.errors import ApiError, problem

# Digits to "9", everything else to a space: a run of 20 digits is then a plain substring search.
# A regex scan for it cost about 1 ms of an 80 kB body (py-spy: a seventh of a 100-record
# request); translating and searching costs about 70 µs.
_DIGITS_ONLY = bytes(b"9"[0] if b"0"[0] <= c <= b"9"[0] else b" "[0] for c in range(256))
_LONG_DIGITS = b"9" * 20


class OrjsonRequest(Request):
    """A request whose JSON body is parsed by orjson first."""

    orjson_body: bytes | None = None
    """The body, once orjson has parsed it: orjson reads the same values from it again, so the
    log writer can lay a request's records out from it (``serving.log.protocol``)."""

    async def json(self) -> Any:
        """The parsed body; the standard library only reads what orjson refuses or rounds."""
        if not hasattr(self, "_json"):
            body = await self.body()
            if _LONG_DIGITS not in body.translate(_DIGITS_ONLY):
                try:
                    self._json = orjson.loads(body)
                except orjson.JSONDecodeError:
                    pass
                else:
                    self.orjson_body = body
                    return self._json
            self._json = _standard_loads(body)
        return self._json


def _standard_loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise json.JSONDecodeError(str(exc), "", 0) from exc


def orjson_body(request: Request) -> bytes | None:
    """The request's body if orjson parsed it (``OrjsonRequest.orjson_body``), else None."""
    return request.orjson_body if isinstance(request, OrjsonRequest) else None


class OrjsonRoute(APIRoute):
    """Routes that hand FastAPI an :class:`OrjsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler for the route, given the orjson request."""
        handler = super().get_route_handler()
        takes_body = self.body_field is not None

        async def orjson_handler(request: Request) -> Response:
            if takes_body:
                _check_content_type(request.headers.get("content-type"))
            return await handler(OrjsonRequest(request.scope, request.receive))

        return orjson_handler


def _check_content_type(declared: str | None) -> None:
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        text = f"the body must be JSON (Content-Type: application/json), not {media or 'empty'}"
        raise ApiError(415, [problem("Content-Type", text)])
