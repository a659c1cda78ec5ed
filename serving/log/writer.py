"""The prediction log's writer process: batches go to the database, or to a spool while it is away.

It runs beside the service (``python -m serving.log.writer URL SPOOL``) so that no database work
takes the service's GIL: with the writer as a thread, logging cost the service a quarter of its
single-record throughput, most of it handing the GIL back and forth around each commit rather
than the commit itself. When the database fails, a batch goes to a local SQLite spool instead
(still committed before the answer), and a replay thread moves spooled batches to the database once
it returns. Inserts are idempotent on ``batch_id``, so a batch that reached both places, or a
batch sent twice, is logged once. The replay thread also checkpoints SQLite's write-ahead log, so
no commit waits for a checkpoint.

It speaks ``serving.log.protocol`` on stdin and stdout. The writer lives as long as its stdin:
signals to the process group are ignored, so a shutdown never cuts a commit short.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

import orjson
import sqlalchemy as sa

from serving.log.protocol import WRITER_URL, decode_batches, read_frame, write_frame
from serving.store.predictions import PredictionStore
from serving.store.quarantine import quarantine
from serving.store.tables import Logged

logger = logging.getLogger("mlserve.log_writer")

# The database is up and refuses a value (too long, malformed): retrying will not help.
REFUSED = (sa.exc.DataError, sa.exc.IntegrityError, sa.exc.ProgrammingError)

_PIPE_BYTES = 1 << 20


class LogWriter:
    """Commits batches to the database, or the spool while the database is away."""

    def __init__(self, url: str, spool_path: Path, *, retry_seconds: float = 1.0) -> None:
        self.store = PredictionStore(url, log_writer=True)
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.spool = PredictionStore(f"sqlite:///{spool_path}")
        self.spool.create_schema()
        self.retry_seconds = retry_seconds
        self._db_down_until = 0.0
        # Commits go through one connection kept open (``PredictionStore.insert_on``); the
        # replay thread takes its own from the pool.
        self._conn: sa.Connection | None = None
        self._stopped = threading.Event()
        self._replayer = threading.Thread(
            target=self._replay_loop, name="spool-replay", daemon=True
        )
        self._replayer.start()

    def write(self, batches: list[Logged]) -> None:
        """Commit the batches to the database, else to the spool; raise only if both fail."""
        error: BaseException | None = None
        if time.monotonic() >= self._db_down_until:
            try:
                if self._conn is None:
                    self._conn = self.store.engine.connect()
                self.store.insert_on(self._conn, batches)
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("prediction log database unavailable, spooling: %s", exc)
                self._db_down_until = time.monotonic() + self.retry_seconds
                self._drop_connection()
                error = exc
            else:
                return
        try:
            self.spool.insert_logged(batches)
        except Exception as exc:
            logger.error("prediction spool failed too (database error: %s): %s", error, exc)
            raise

    def replay(self, chunk: int = 100) -> int:
        """Move spooled batches to the database (oldest first); returns how many left the spool.

        A chunk the database refuses (it is up, but will not take some value) goes batch by
        batch, and each refused batch is set aside in the spool's quarantine: one bad batch must
        not hold back every answered prediction after it.
        """
        moved = 0
        while batches := self.spool.oldest_batches(chunk):
            try:
                self.store.insert_batches(batches)
            except REFUSED:
                for batch in batches:
                    try:
                        self.store.insert_batches([batch])
                    except REFUSED as exc:
                        logger.error("spooled batch %s refused, quarantined: %s", batch, exc)
                        quarantine(self.spool, batch, str(exc.orig or exc))
            self.spool.delete_batches([batch.batch_id for batch in batches])
            moved += len(batches)
            self._db_down_until = 0.0
        return moved

    def close(self, timeout: float = 10.0) -> None:
        """Stop the replay thread, then replay once more: what the spool holds leaves with us.

        If the database is still away the rows stay in the spool for the next start (which is
        why the spool must outlive the container: a volume, not the container's own disk).
        """
        self._stopped.set()
        self._replayer.join(timeout)
        self._drop_connection()
        try:
            self.replay()
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("the database is still away: the spool keeps its rows (%s)", exc)

    def _drop_connection(self) -> None:
        """Close the kept connection: after a failure it may be dead; the next write opens one."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _replay_loop(self) -> None:
        while not self._stopped.wait(self.retry_seconds):
            try:
                self.replay()
                self.store.checkpoint()
            except sa.exc.SQLAlchemyError as exc:
                logger.warning("spool replay waits for the database: %s", exc)


def serve(writer: LogWriter, requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer batch frames until the service closes the stream."""
    write_frame(answers, b"null")
    while (body := read_frame(requests)) is not None:
        try:
            writer.write(decode_batches(body))
        except Exception as exc:
            answer: str | None = f"{exc.__class__.__name__}: {exc}"
        else:
            answer = None
        write_frame(answers, orjson.dumps(answer))


def main(argv: list[str] | None = None) -> None:
    """Run the writer on stdin/stdout for the service that started it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spool_path", type=Path)
    parser.add_argument("--retry-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # A 100-record batch is ~80 KB of JSON: a default 64 KB pipe would wake both sides for
    # every 64 KB of it.
    with contextlib.suppress(OSError):  # a pipe, and within fs/pipe-max-size, where it matters
        fcntl.fcntl(sys.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    # Frames own stdout: anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    writer = LogWriter(os.environ[WRITER_URL], args.spool_path, retry_seconds=args.retry_seconds)
    try:
        serve(writer, sys.stdin.buffer, answers)
    finally:
        writer.close()


if __name__ == "__main__":
    main()
