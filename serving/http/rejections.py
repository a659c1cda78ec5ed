"""Every error answer counted at the edge of the app, whichever layer gave it.

Routing, size limits, keys, parsing, the model and the stores each answer errors of their own; an
ASGI middleware sees them all, so ``mlserve_rejected_requests_total`` misses none.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


class CountRejections:
    """ASGI middleware counting every answer with a status of 400 or more.

    ``count`` is looked up per answer (``None`` until the service has made its metrics); a path
    that is not one of ``endpoints()`` counts as ``other``, so probing random paths cannot grow the
    metric's label set without bound.
    """

    def __init__(
        self,
        app: Any,
        count: Callable[[], Callable[[str, int], None] | None],
        endpoints: Callable[[], Collection[str]],
    ) -> None:
        self.app = app
        self.count = count
        self.endpoints = endpoints

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, watching the status it is answered with."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        answered = False

        async def watching_send(message: dict[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                if message["status"] >= 400:
                    self._count(scope["path"], message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception:  # answered 500 by a server error handler further out
            if not answered:
                self._count(scope["path"], 500)
            raise

    def _count(self, path: str, status: int) -> None:
        count = self.count()
        if count is not None:
            count(path if path in self.endpoints() else "other", status)
