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
from serving.store.tables import feedback, predictions


def answered(
    store: PredictionStore, model_name: str, version: str, since: float, until: float, limit: int
) -> pd.DataFrame:
    """The first ``limit`` predictions ``version`` made in [since, until), oldest first.

    Columns: prediction_id, created_at, features, prediction, probabilities, ground_truth (None
    while unlabelled).
    """
    labels = feedback.c.withdrawn_at.is_(None)
    query = (
        sa.select(
            predictions.c.prediction_id,
            predictions.c.created_at,
            predictions.c.features,
            predictions.c.prediction,
            predictions.c.probabilities,
            feedback.c.ground_truth,
        )
        .select_from(
            predictions.outerjoin(
                feedback, (feedback.c.prediction_id == predictions.c.prediction_id) & labels
            )
        )
        .where(
            predictions.c.model_name == model_name,
            predictions.c.model_version == str(version),
            predictions.c.created_at >= since,
            predictions.c.created_at < until,
        )
        .order_by(predictions.c.created_at, predictions.c.prediction_id)
        .limit(limit)
    )
    return store.frame(query)


def recent(store: PredictionStore, model_name: str, limit: int) -> pd.DataFrame:
    """The latest ``limit`` predictions of the model, any version: the drift check's read.

    Columns: model_version, features, prediction, probabilities.
    """
    query = (
        sa.select(
            predictions.c.model_version,
            predictions.c.features,
            predictions.c.prediction,
            predictions.c.probabilities,
        )
        .where(predictions.c.model_name == model_name)
        .order_by(predictions.c.created_at.desc())
        .limit(limit)
    )
    return store.frame(query)
