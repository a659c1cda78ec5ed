"""Labelled feedback as data: live metrics per served version, and rows for retraining.

Pure functions over the frame ``PredictionStore.labelled`` returns (one row per labelled
prediction: prediction_id, model_version, created_at, features, prediction, ground_truth,
received_at), so the loop's arithmetic is testable without a server or a database.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import pandas as pd

from mlserve_assets.ml.metrics import Metric


def live_metrics(labelled: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The metric of each served version on its own labelled predictions, oldest version first."""
    if labelled.empty:
        return pd.DataFrame(columns=["model_version", "labelled", metric.name])
    rows = []
    for version, group in labelled.groupby("model_version", sort=False):
        score = metric.score(group["ground_truth"].to_numpy(), group["prediction"].to_numpy())
        rows.append({"model_version": str(version), "labelled": len(group), metric.name: score})
    frame = pd.DataFrame(rows)
    return frame.sort_values("model_version", key=lambda v: v.astype(int)).reset_index(drop=True)


def version_live_metric(
    live: pd.DataFrame, version: str, metric: Metric, min_labelled: int = 1
) -> float | None:
    """A version's value in :func:`live_metrics`; None below ``min_labelled`` labels."""
    row = live[live["model_version"] == str(version)]
    if row.empty or int(row["labelled"].iloc[0]) < min_labelled:
        return None
    return float(row[metric.name].iloc[0])


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


FeedbackRole = Literal["gate", "select", "train"]


def feedback_role(prediction_id: str, gate_fraction: float, select_fraction: float) -> FeedbackRole:
    """A label's role, from a hash of its prediction id: the same in every process and retraining.

    The first ``gate_fraction`` of the hash range only ever judges challenger against champion,
    the next ``select_fraction`` chooses the candidate and the data mix, the rest trains. A label
    that gated once never trains a later model, so the gate never scores a model on its own rows.
    """
    bucket = int(hashlib.sha256(prediction_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if bucket < gate_fraction:
        return "gate"
    return "select" if bucket < gate_fraction + select_fraction else "train"
