"""Durable, batched prediction logging: a request is answered only once its rows are safe.

A writer thread group-commits whatever rows are waiting (one transaction for many requests), so the
database sees batches, not one INSERT per record, and each request waits only for the next commit.
When the database is away, the batch goes to a local SQLite spool instead (still committed before
the answer), and a replay loop moves spooled rows to the database when it returns. Inserts are
idempotent on ``prediction_id``, so a row that reached both places is logged once. The replay
thread also checkpoints SQLite's write-ahead log, so no request waits for a checkpoint.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import sqlalchemy as sa

from mlserve_assets.prediction_store import PredictionRow, PredictionStore

logger = logging.getLogger(__name__)

_STOP = object()


class PredictionLog:
    """Group-committing writer with a local spool for database outages."""

    def __init__(
        self,
        url: str,
        spool_path: Path,
        *,
        max_batch_rows: int = 2000,
        retry_seconds: float = 1.0,
    ) -> None:
        # Its own store: SQLite checkpoints run on the replay thread, never inside a commit.
        self.store = PredictionStore(url, log_writer=True)
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool = PredictionStore(f"sqlite:///{spool_path}")
        self.spool.create_schema()
        self.max_batch_rows = max_batch_rows
        self.retry_seconds = retry_seconds
        self._queue: queue.Queue = queue.Queue()
        self._db_down_until = 0.0
        self._stopped = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="prediction-log", daemon=True)
        self._replayer = threading.Thread(
            target=self._replay_loop, name="spool-replay", daemon=True
        )
        self._writer.start()
        self._replayer.start()

    def submit(self, rows: list[PredictionRow]) -> Future:
        """Queue rows; the future completes once they are committed to the database or the spool."""
        done: Future = Future()
        self._queue.put((rows, done))
        return done

    def spooled(self) -> int:
        """Rows waiting in the spool for the database to return."""
        return self.spool.count_predictions()

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued, then stop both threads."""
        self._queue.put(_STOP)
        self._writer.join(timeout)
        self._stopped.set()
        self._replayer.join(timeout)

    def _take_batch(self) -> tuple[list[PredictionRow], list[Future], bool]:
        rows: list[PredictionRow] = []
        waiters: list[Future] = []
        item = self._queue.get()
        stop = item is _STOP
        while not stop:
            rows.extend(item[0])
            waiters.append(item[1])
            if len(rows) >= self.max_batch_rows:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            stop = item is _STOP
        return rows, waiters, stop

    def _write_loop(self) -> None:
        while True:
            rows, waiters, stop = self._take_batch()
            if rows:
                self._commit(rows, waiters)
            if stop:
                return

    def _commit(self, rows: list[PredictionRow], waiters: list[Future]) -> None:
        error: BaseException | None = None
        if time.monotonic() >= self._db_down_until:
            try:
                self.store.insert_predictions(rows)
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("prediction log database unavailable, spooling: %s", exc)
                self._db_down_until = time.monotonic() + self.retry_seconds
                error = exc
            else:
                self._resolve(waiters, None)
                return
        try:
            self.spool.insert_predictions(rows)
        except Exception as exc:
            logger.error("prediction spool failed too (database error: %s): %s", error, exc)
            self._resolve(waiters, exc)
            return
        self._resolve(waiters, None)

    @staticmethod
    def _resolve(waiters: list[Future], error: BaseException | None) -> None:
        for waiter in waiters:
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _replay_loop(self) -> None:
        while not self._stopped.wait(self.retry_seconds):
            try:
                self.replay()
                self.store.checkpoint()
            except sa.exc.SQLAlchemyError as exc:
                logger.info("spool replay waits for the database: %s", exc)

    def replay(self, chunk: int = 5000) -> int:
        """Move spooled rows to the database (oldest first); returns how many moved."""
        moved = 0
        while True:
            batch = self.spool.oldest_predictions(chunk)
            if not batch:
                return moved
            self.store.insert_predictions(batch)
            self.spool.delete_predictions([row.prediction_id for row in batch])
            moved += len(batch)
            self._db_down_until = 0.0
