"""Spooled batches the database refused on replay, set aside with the reason.

They live in the spool (the only place they exist); ``quarantined`` counts them for the service's
metric, and ``mlserve_prediction_log_quarantined`` > 0 means an answered prediction could not be
logged: someone must look at the row and the reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import sqlalchemy as sa

from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch, quarantined_batches


def quarantine(spool: PredictionStore, batch: PredictionBatch, error: str) -> None:
    """Keep ``batch`` and why the database refused it (once per batch)."""
    values = {
        "batch_id": batch.batch_id,
        "quarantined_at": time.time(),
        "batch": json.dumps(asdict(batch), default=str),
        "error": error,
    }
    with spool.engine.begin() as conn:
        exists = sa.select(quarantined_batches.c.batch_id).where(
            quarantined_batches.c.batch_id == batch.batch_id
        )
        if conn.execute(exists).first() is None:
            conn.execute(quarantined_batches.insert().values(**values))


def quarantined(spool: PredictionStore) -> int:
    """How many rows the spool holds in quarantine."""
    with spool.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(quarantined_batches)).scalar()
