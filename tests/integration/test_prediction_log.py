"""The prediction log: its writer process, group commit, and a writer that dies mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness.servers import Postgres
from serving.log.client import PredictionLog, PredictionLogError
from serving.log.writer import LogWriter
from serving.store.engine import LOG_WRITE_TIMEOUT_MS
from serving.store.ids import new_batch_id
from serving.store.predictions import PredictionStore
from serving.store.quarantine import quarantined
from serving.store.tables import PredictionBatch, quarantined_batches

FEATURES = {f"feature {i}": i * 1.123456789 for i in range(30)}


def _batch(count: int) -> PredictionBatch:
    """A request's ``count`` answered records, as the service logs them."""
    return PredictionBatch(
        new_batch_id(),
        time.time(),
        "m",
        "1",
        [FEATURES] * count,
        [1] * count,
        [{"0": 0.2, "1": 0.8}] * count,
    )


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path: Path):
    db = tmp_path / "predictions.db"
    url = f"sqlite:///{db}"
    PredictionStore(url).create_schema()

    idle = LogWriter(url, tmp_path / "spool.db", retry_seconds=3600)
    wal, written = tmp_path / "predictions.db-wal", 0
    while not wal.exists() or wal.stat().st_size < 6_000_000:  # SQLite alone checkpoints at 4 MB
        assert written < 50_000, "the WAL stays under 6 MB: a commit checkpoints it"
        idle.write([_batch(100).logged()])
        written += 100
    assert idle.store.count_predictions() == written
    before = db.stat().st_size
    assert before < 1_000_000, "a commit folded the WAL into the database file"
    idle.close()

    ticking = LogWriter(url, tmp_path / "spool.db", retry_seconds=0.1)
    ticking.write([_batch(10).logged()])
    deadline = time.monotonic() + 10
    while db.stat().st_size < before + 1_000_000:  # the WAL's pages folded in
        assert time.monotonic() < deadline, "the background thread never checkpointed"
        time.sleep(0.05)
    assert PredictionStore(url).count_predictions() == written + 10
    ticking.close()


def test_concurrent_requests_all_land_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = PredictionStore(url)
    store.create_schema()
    log = PredictionLog(url, tmp_path / "spool.db")
    batches = [_batch(1 + i % 3) for i in range(300)]

    async def flow() -> None:
        await log.start()
        await asyncio.gather(*(log.log(batch) for batch in batches))
        await log.close()

    asyncio.run(flow())
    logged = [pid for batch in batches for pid in batch.prediction_ids]
    assert store.count_predictions() == len(logged)
    assert all(store.prediction(i) is not None for i in logged[:: len(logged) // 20])
    assert log.spooled() == 0


def test_a_writer_killed_mid_stream_loses_no_answered_prediction(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = PredictionStore(url)
    store.create_schema()
    log = PredictionLog(url, tmp_path / "spool.db")
    answered: list[str] = []
    pids: set[int] = set()

    async def request() -> None:
        batch = _batch(5)
        await log.log(batch)
        answered.extend(batch.prediction_ids)

    async def flow() -> None:
        await log.start()
        for wave in range(30):
            pids.add(log.writer_pid)
            if wave in (10, 20):
                os.kill(log.writer_pid, signal.SIGKILL)
            await asyncio.gather(*(request() for _ in range(20)))
        await log.close()

    asyncio.run(flow())
    assert len(pids) == 3, "the killed writers were not replaced"
    assert len(answered) == 30 * 20 * 5
    assert store.count_predictions() == len(answered)


def test_a_writer_that_cannot_start_fails_start_up(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    log = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", blocked / "spool.db")
    with pytest.raises(PredictionLogError, match="did not start"):
        asyncio.run(log.start())


def test_a_stalled_database_sends_batches_to_the_spool(postgres: Postgres, tmp_path: Path):
    url = postgres.create_database("stalled")
    store = PredictionStore(url)
    store.create_schema()
    writer = LogWriter(url, tmp_path / "spool.db", retry_seconds=0.2)
    batch = _batch(10)
    locker = sa.create_engine(url).connect()
    locker.exec_driver_sql("LOCK TABLE prediction_batches IN ACCESS EXCLUSIVE MODE")
    # Released well after the writer's timeout: a writer that waited would land in the database.
    release = threading.Timer(2 * LOG_WRITE_TIMEOUT_MS / 1000, locker.commit)
    release.start()
    try:
        writer.write([batch.logged()])
        assert writer.spool.count_predictions() == 10, "the writer waited out the lock"
    finally:
        release.join()
        locker.close()
    deadline = time.monotonic() + 30
    while writer.spool.count_predictions() or store.count_predictions() < 10:
        assert time.monotonic() < deadline, "the spool was not replayed after the lock went"
        time.sleep(0.1)
    assert store.count_predictions() == 10
    writer.close()


def test_a_spooled_batch_the_database_refuses_is_quarantined_and_the_rest_replay(
    postgres: Postgres, tmp_path: Path
):
    db_url = postgres.create_database("quarantine")
    PredictionStore(db_url).create_schema()  # as the service does before its writer starts
    spool_path = tmp_path / "spool.db"
    before, after = _batch(2), _batch(3)
    refused = replace(_batch(1), model_version="v" * 40)  # the column holds 32 characters
    spool = PredictionStore(f"sqlite:///{spool_path}")
    spool.create_schema()
    spool.insert_batches([before, refused, after])  # SQLite takes it; PostgreSQL will not
    writer = LogWriter(db_url, spool_path, retry_seconds=3600)  # no replay but this one
    try:
        assert writer.replay() == 3
    finally:
        writer.close()
    store = PredictionStore(db_url)
    logged = [store.prediction(pid) for pid in before.prediction_ids + after.prediction_ids]
    assert logged == before.rows() + after.rows()
    assert store.count_predictions() == 5
    store.dispose()
    assert spool.count_predictions() == 0
    assert quarantined(spool) == 1
    with spool.engine.connect() as conn:
        kept = conn.execute(sa.select(quarantined_batches)).mappings().one()
    assert kept["batch_id"] == refused.batch_id and "too long" in kept["error"]
