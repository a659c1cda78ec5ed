"""The challenger's shadow answers: written by the service, read beside the labels to compare.

Each row is what the challenger would have answered to a request the champion answered (same
``prediction_id``). A label, which names that id, then judges both on the same request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from serving.store import moves
from serving.store.predictions import PredictionStore
from serving.store.tables import feedback, shadow_predictions


@dataclass(frozen=True)
class ShadowRow:
    """One shadow answer, as logged."""

    prediction_id: str
    model_version: str
    model_name: str
    created_at: float
    prediction: Any
    probabilities: dict[str, float] | None = None


def insert(store: PredictionStore, rows: Iterable[ShadowRow]) -> None:
    """Log shadow answers; one already logged (a retried batch) is kept, not doubled."""
    values = [asdict(row) for row in rows]
    if not values:
        return
    dialect = sqlite if store.engine.dialect.name == "sqlite" else postgresql
    with store.engine.begin() as conn:
        conn.execute(dialect.insert(shadow_predictions).on_conflict_do_nothing(), values)


def shadowed(store: PredictionStore, model_name: str, version: str) -> int:
    """How many requests ``version`` answered in shadow."""
    query = sa.select(sa.func.count()).where(
        shadow_predictions.c.model_name == model_name,
        shadow_predictions.c.model_version == str(version),
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def pairing_start(store: PredictionStore, model_name: str) -> float:
    """When the current champion and challenger first stood side by side.

    The newest move of either alias: evidence from before it judged another pairing (or an
    earlier trial of the same challenger) and does not count for this one.
    """
    newest = [
        m.moved_at
        for alias in moves.TABLES
        for m in moves.history(store, model_name, last=1, alias=alias)
    ]
    return max(newest, default=0.0)


def outcomes(
    store: PredictionStore, model_name: str, version: str, since: float = 0.0
) -> pd.DataFrame:
    """Labelled requests ``version`` answered in shadow from ``since`` on, oldest label first.

    Columns: ground_truth, prediction (what was answered), model_version (who answered it),
    shadow (what ``version`` would have answered), key_id (who labelled):
    ``mlserve_assets.ml.replay``'s input.
    """
    query = (
        sa.select(
            feedback.c.ground_truth,
            feedback.c.prediction,
            feedback.c.model_version,
            shadow_predictions.c.prediction.label("shadow"),
            feedback.c.key_id,
        )
        .select_from(
            shadow_predictions.join(
                feedback, feedback.c.prediction_id == shadow_predictions.c.prediction_id
            )
        )
        .where(
            shadow_predictions.c.model_name == model_name,
            shadow_predictions.c.model_version == str(version),
            shadow_predictions.c.created_at >= since,
            feedback.c.withdrawn_at.is_(None),
        )
        .order_by(feedback.c.received_at)
    )
    return store.frame(query)
