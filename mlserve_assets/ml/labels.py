"""Labelled feedback as data: live metrics per served version, and rows for retraining.

Pure functions over the frame ``PredictionStore.labelled`` returns (one row per labelled
prediction: prediction_id, model_version, created_at, features, prediction, ground_truth,
received_at), so the loop's arithmetic is testable without a server or a database.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from mlserve_assets.ml.metrics import Metric


def live_metrics(labelled: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The metric of each served version on its own labelled predictions, oldest version first."""
    if labelled.empty:
        return pd.DataFrame(columns=["model_version", "labelled", metric.name])
    rows = []
    for version, group in labelled.groupby("model_version", sort=False):
        score = outcome_metric(group, metric)
        rows.append({"model_version": str(version), "labelled": len(group), metric.name: score})
    frame = pd.DataFrame(rows)
    return frame.sort_values("model_version", key=lambda v: v.astype(int)).reset_index(drop=True)


def outcome_metric(outcomes: pd.DataFrame, metric: Metric, min_labelled: int = 1) -> float | None:
    """The metric over one version's outcomes (prediction, ground_truth), if there are enough.

    None below ``min_labelled`` outcomes: a live metric on a handful of labels is noise.
    """
    if outcomes.empty or len(outcomes) < min_labelled:
        return None
    return metric.score(outcomes["ground_truth"].to_numpy(), outcomes["prediction"].to_numpy())


def feature_frame(labelled: pd.DataFrame, features: list[str], target: str) -> pd.DataFrame:
    """Features from the prediction log and the label from feedback, one row per input.

    The same input labelled more than once (a client sending one case twice) counts once, with
    its latest label, so repeated traffic cannot outweigh the rest of the feedback.
    """
    columns = [*features, target, "prediction_id", "received_at"]
    if labelled.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(list(labelled["features"]), index=labelled.index)[features]
    frame[target] = labelled["ground_truth"].to_numpy()
    frame["prediction_id"] = labelled["prediction_id"].to_numpy()
    frame["received_at"] = labelled["received_at"].to_numpy()
    deduped = frame.sort_values("received_at").drop_duplicates(subset=features, keep="last")
    return deduped[columns].reset_index(drop=True)


GATE = "gate"


def feedback_role(prediction_id: str, gate_fraction: float, folds: int, secret: bytes) -> str | int:
    """A label's role, from a keyed hash of its prediction id: the same in every retraining.

    Keyed by the log's secret (HMAC-SHA256): whoever sees prediction ids, a feedback client,
    cannot compute which of their labels will train a model and which will judge it.

    The first ``gate_fraction`` of the hash range only ever judges challenger against champion;
    the rest is cut into ``folds`` selection folds (``int``): each fold in turn chooses the
    candidate and the mix while the others train, and the final model fits on them all. A label
    that gated once never trains a later model, so the gate never scores a model on its own rows.
    """
    keyed = hmac.new(secret, prediction_id.encode(), hashlib.sha256).hexdigest()
    bucket = int(keyed[:8], 16) / 0xFFFFFFFF
    if bucket < gate_fraction:
        return GATE
    return min(folds - 1, int((bucket - gate_fraction) / (1 - gate_fraction) * folds))
