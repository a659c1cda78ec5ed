"""What a prediction log holds, record by record: for tests that count every answered prediction."""

from __future__ import annotations

import sqlalchemy as sa

from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch, PredictionRow, prediction_batches


def logged_rows(url: str, *where: sa.ColumnElement[bool]) -> list[PredictionRow]:
    """Every record the log at ``url`` holds (in batches matching ``where``), oldest first."""
    store = PredictionStore(url)
    query = sa.select(prediction_batches).where(*where).order_by(prediction_batches.c.created_at)
    try:
        with store.engine.connect() as conn:
            batches = conn.execute(query).all()
    finally:
        store.dispose()
    return [row for batch in batches for row in PredictionBatch.from_row(batch).rows()]


def logged_ids(url: str) -> list[str]:
    """Every logged prediction's id."""
    return [row.prediction_id for row in logged_rows(url)]
