"""Durable, group-committed prediction logging: a request is answered only once its batch is safe.

Each request adds its batch (one row of the log, ``PredictionBatch``) to the next group and waits
for it; one group at a time goes to the writer process (``serving.log.writer``), which commits it
to the database or the spool and answers. While a group commits, the next one gathers, so under
load each commit carries many requests and a request waits for at most the commit in progress and
its own. All of it runs on the event loop: a group costs the service one write and one read on a
pipe, whatever its size.

If the writer exits, a new one is started and the group sent again (inserts are idempotent), so a
crash of the writer costs no answered prediction and no request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from serving.log.protocol import WRITER_URL, encode_batches, frame, read_answer
from serving.store.predictions import PredictionStore
from serving.store.quarantine import quarantined
from serving.store.tables import PredictionBatch

logger = logging.getLogger(__name__)

# The folder holding the ``serving`` package, for the writer's imports
# (a bento's source folder is not the service's working directory).
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


class PredictionLogError(RuntimeError):
    """Neither the database nor the spool took a batch, or the writer cannot run."""


class PredictionLog:
    """The service's side of the log: group commit through the writer process."""

    def __init__(self, url: str, spool_path: Path, *, retry_seconds: float = 1.0) -> None:
        # The URL (it may hold the database's password) goes by environment, not on the command
        # line that any local user can read in the process table.
        self._url = url
        self._command = [sys.executable, "-m", "serving.log.writer", str(spool_path)]
        self._command += ["--retry-seconds", str(retry_seconds)]
        self._spool_url = f"sqlite:///{spool_path}"
        self._spool: PredictionStore | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._pending: list[tuple[PredictionBatch, bytes | None]] = []
        self._group: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer; return once it has opened the database and the spool."""
        paths = [str(_SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), WRITER_URL: self._url}
        self._process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            await self._answer()
        except asyncio.IncompleteReadError as exc:
            await self._reap()
            problem = "the prediction log writer did not start (its log says why)"
            raise PredictionLogError(problem) from exc
        if self._spool is None:  # the writer has created it
            self._spool = PredictionStore(self._spool_url)

    @property
    def writer_pid(self) -> int | None:
        """The writer process, while one runs."""
        return None if self._process is None else self._process.pid

    async def log(self, batch: PredictionBatch, body: bytes | None = None) -> None:
        """Return once the batch is committed to the database or the spool; raise if neither.

        ``body``: the request's JSON its records were parsed from by orjson, if they were; the
        writer then lays them out (``protocol.encode_batches``).
        """
        loop = asyncio.get_running_loop()
        if self._group is None:
            self._group = loop.create_future()
        group = self._group
        self._pending.append((batch, body))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # Shielded: a request that is cancelled must not cancel the commit its group waits for.
        await asyncio.shield(group)

    @property
    def spool(self) -> PredictionStore | None:
        """The spool the writer falls back to (None before the writer has created it)."""
        return self._spool

    def spooled(self) -> int:
        """Predictions waiting in the spool for the database (0 before the writer starts)."""
        return 0 if self._spool is None else self._spool.count_predictions()

    def quarantined(self) -> int:
        """Spooled batches the database refused, set aside (``serving.store.quarantine``)."""
        return 0 if self._spool is None else quarantined(self._spool)

    def writable(self, database: PredictionStore) -> bool:
        """Whether an answered prediction can be logged now: to ``database``, else the spool."""
        for store in filter(None, (database, self._spool)):
            try:
                store.probe()
            except Exception as exc:
                logger.warning("readiness: %s cannot take writes: %s", store.engine.url, exc)
            else:
                return True
        return False

    async def close(self, timeout: float = 10.0) -> None:
        """Commit what is pending, then let the writer finish and exit."""
        if self._flusher is not None:
            await self._flusher
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _flush(self) -> None:
        while self._pending:
            batches, group = self._pending, self._group
            self._pending, self._group = [], None
            try:
                await self._commit(encode_batches(batches))
            except Exception as exc:
                group.set_exception(exc)
            else:
                group.set_result(None)

    async def _commit(self, body: bytes) -> None:
        for attempt in (1, 2):
            if self._process is None:
                await self.start()
            try:
                self._process.stdin.write(frame(body))
                await self._process.stdin.drain()
                error = await self._answer()
            except (ConnectionError, asyncio.IncompleteReadError):
                logger.error("prediction log writer exited (attempt %d); starting another", attempt)
                await self._reap()
                continue
            if error is not None:
                raise PredictionLogError(error)
            return
        raise PredictionLogError("the prediction log writer exited twice on one batch")

    async def _reap(self) -> None:
        process, self._process = self._process, None
        await process.wait()

    async def _answer(self) -> str | None:
        return await read_answer(self._process.stdout)
