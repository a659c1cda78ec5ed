"""The log writer on SQLite: commits never fold the write-ahead log; its background thread does."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from mlserve_assets.prediction_store import PredictionRow, PredictionStore
from serving.prediction_log import PredictionLog

FEATURES = {f"feature {i}": i * 1.123456789 for i in range(30)}


def _write(log: PredictionLog, batches: int, rows: int) -> None:
    async def flow() -> None:
        for _ in range(batches):
            batch = [
                PredictionRow(uuid.uuid4().hex, time.time(), "m", "1", FEATURES, 1)
                for _ in range(rows)
            ]
            await asyncio.gather(*(asyncio.wrap_future(log.submit([row])) for row in batch))

    asyncio.run(flow())


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path: Path):
    db = tmp_path / "predictions.db"
    url = f"sqlite:///{db}"
    PredictionStore(url).create_schema()

    idle = PredictionLog(url, tmp_path / "spool.db", retry_seconds=3600)
    _write(idle, batches=60, rows=100)  # ~6 MB of WAL: SQLite alone would checkpoint at 4 MB
    assert idle.store.count_predictions() == 6000
    assert db.stat().st_size < 1_000_000, "a commit folded the WAL into the database file"
    idle.close()

    ticking = PredictionLog(url, tmp_path / "spool.db", retry_seconds=0.1)
    _write(ticking, batches=1, rows=10)
    deadline = time.monotonic() + 10
    while db.stat().st_size < 4_000_000:
        assert time.monotonic() < deadline, "the background thread never checkpointed"
        time.sleep(0.05)
    assert PredictionStore(url).count_predictions() == 6010
    ticking.close()
