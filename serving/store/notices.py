"""Moves announced: a recorded move wakes every serving replica at once, not at its next poll.

Each replica polls the registry on its own clock, so after a promotion replicas could answer with
different versions for up to a poll interval. On PostgreSQL the transaction that records a move
also sends a notification, which PostgreSQL delivers only when (and if) that transaction commits,
to every session listening: each service listens on a connection of its own and follows the
aliases as soon as a move of its model arrives, so replicas agree within one model load. The poll
stays as the fallback: SQLite has no notifications, and a listening connection can drop (it is
opened again at the next wait).
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from typing import Any

import sqlalchemy as sa

CHANNEL = "mlserve_moves"
"""The PostgreSQL notification channel a recorded move is announced on, its payload the model."""

logger = logging.getLogger("mlserve.serving")


def announce(conn: sa.Connection, model_name: str) -> None:
    """Announce a move of ``model_name`` when ``conn``'s transaction commits (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(CHANNEL, model_name)))


class MoveListener:
    """Waits for announced moves of one model on a PostgreSQL connection of its own."""

    def __init__(self, engine: sa.Engine, model_name: str) -> None:
        self._engine, self._model = engine, model_name
        self._listens = engine.dialect.name == "postgresql"
        self._conn: Any = None

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds``, less if a move of the model is announced; True once ``stop`` is set.

        Checks ``stop`` every half second, so a shutdown is not held for a poll interval.
        """
        if not self._listens:
            return stop.wait(seconds)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if stop.is_set():
                return True
            try:
                if self._announced(min(left, 0.5)):
                    break
            except Exception as exc:  # the database went away: poll until it is back
                logger.warning("listening for champion moves failed, polling: %s", exc)
                self.close()
                return stop.wait(left)
        return stop.is_set()

    def _announced(self, seconds: float) -> bool:
        conn = self._conn or self._listen()
        readable, _, _ = select.select([conn], [], [], seconds)
        if not readable:
            return False
        conn.poll()
        moved = any(n.payload == self._model for n in conn.notifies)
        conn.notifies.clear()
        return moved

    def _listen(self) -> Any:
        """A connection outside the engine's pool, in autocommit, listening on ``CHANNEL``."""
        pooled = self._engine.raw_connection()
        pooled.detach()  # held for the process's life: not one the pool's users wait for
        conn = pooled.dbapi_connection
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self._conn = conn
        return conn

    def close(self) -> None:
        """Stop listening (the next wait listens again)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already gone with the database
                self._conn.close()
            self._conn = None
