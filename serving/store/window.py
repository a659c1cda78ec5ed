"""Windows of the log: what one version answered after a move, and the latest traffic.

The baking sensor reads the first ``limit`` answers of a new champion after the alias moved to it
(``mlserve_assets.sensors.bake``), features and logged probabilities included, each with its label
if one arrived (whenever it arrived: a late label still counts for the version that made the
prediction), withdrawn labels left out. The drift check reads the latest ``limit`` predictions.
Both are bounded by ``limit``, so their cost does not grow with the log.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch, PredictionRow, feedback, prediction_batches

_BATCHES = prediction_batches.c
# Batches read per round trip while gathering a window's records.
_PAGE = 200


def answered(
    store: PredictionStore, model_name: str, version: str, since: float, until: float, limit: int
) -> pd.DataFrame:
    """The first ``limit`` predictions ``version`` made in [since, until), oldest first.

    Columns: prediction_id, created_at, features, prediction, probabilities, ground_truth (None
    while unlabelled).
    """
    query = (
        sa.select(prediction_batches)
        .where(
            _BATCHES.model_name == model_name,
            _BATCHES.model_version == str(version),
            _BATCHES.created_at >= since,
            _BATCHES.created_at < until,
        )
        .order_by(_BATCHES.created_at, _BATCHES.batch_id)
    )
    rows = _records(store, query, limit)
    labels = _labels(store, [row.prediction_id for row in rows])
    columns = ["prediction_id", "created_at", "features", "prediction", "probabilities"]
    frame = pd.DataFrame([[getattr(row, c) for c in columns] for row in rows], columns=columns)
    frame["ground_truth"] = [labels.get(row.prediction_id) for row in rows]
    return frame


def recent(store: PredictionStore, model_name: str, limit: int) -> pd.DataFrame:
    """The latest ``limit`` predictions of the model, any version: the drift check's read.

    Columns: model_version, features, prediction, probabilities.
    """
    query = (
        sa.select(prediction_batches)
        .where(_BATCHES.model_name == model_name)
        .order_by(_BATCHES.created_at.desc(), _BATCHES.batch_id.desc())
    )
    rows = _records(store, query, limit, newest_first=True)
    return pd.DataFrame(
        [(r.model_version, r.features, r.prediction, r.probabilities) for r in rows],
        columns=["model_version", "features", "prediction", "probabilities"],
    )


def _records(
    store: PredictionStore, query: sa.Select, limit: int, newest_first: bool = False
) -> list[PredictionRow]:
    """The first ``limit`` records of the batches ``query`` orders, a page of batches at a time."""
    records: list[PredictionRow] = []
    with store.engine.connect() as conn:
        offset = 0
        while len(records) < limit:
            page = conn.execute(query.limit(_PAGE).offset(offset)).all()
            for row in page:
                batch = PredictionBatch.from_row(row).rows()
                records += reversed(batch) if newest_first else batch
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return records[:limit]


def _labels(store: PredictionStore, ids: list[str]) -> dict[str, object]:
    """The standing (not withdrawn) label of each of ``ids`` that has one."""
    labels: dict[str, object] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            query = sa.select(feedback.c.prediction_id, feedback.c.ground_truth).where(
                feedback.c.prediction_id.in_(ids[start : start + 500]),
                feedback.c.withdrawn_at.is_(None),
            )
            labels.update((pid, truth) for pid, truth in conn.execute(query))
    return labels
