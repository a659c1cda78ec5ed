"""What one version answered in a window of time, with the labels that arrived for it since.

The baking sensor's only read (``mlserve_assets.sensors.bake``): the first ``limit`` answers of
a new champion after the alias moved to it, features and logged probabilities included, each with
its label if one arrived (whenever it arrived: a late label still counts for the version that made
the prediction), withdrawn labels left out. Bounded by ``limit``, so its cost does not grow with
the log.
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
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame(rows, columns=list(query.selected_columns.keys()))
