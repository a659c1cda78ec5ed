"""Labelled feedback as data: live metrics per served version, and rows for retraining.

Pure functions over the frame ``PredictionStore.labelled`` returns (one row per labelled
prediction: prediction_id, model_version, created_at, features, prediction, ground_truth,
received_at, key_id), so the loop's arithmetic is testable without a server or a database.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec.models import ColumnRule
from serving.model.rules import violation

UNKNOWN_SENDER = "unknown"
"""The sender of a label stored before labels recorded their key: never a trusted source."""


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
    its latest label, so repeated traffic cannot outweigh the rest of the feedback. Each row keeps
    the id of the key that sent its label (``UNKNOWN_SENDER`` when none was recorded), for the
    gate's bound on one source.
    """
    columns = [*features, target, "prediction_id", "received_at", "key_id"]
    if labelled.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(list(labelled["features"]), index=labelled.index)[features]
    frame[target] = labelled["ground_truth"].to_numpy()
    frame["prediction_id"] = labelled["prediction_id"].to_numpy()
    frame["received_at"] = labelled["received_at"].to_numpy()
    frame["key_id"] = labelled["key_id"].fillna(UNKNOWN_SENDER).to_numpy()
    deduped = frame.sort_values("received_at").drop_duplicates(subset=features, keep="last")
    return deduped[columns].reset_index(drop=True)


def breaks(rule: ColumnRule, values: pd.Series) -> pd.Series:
    """Which values break ``rule`` (min, max, allowed, nullable), row by row.

    By the service's own reading of the rule (``serving.model.rules``), which logs each
    answered record's violations: the log and the training data agree on every row.
    """
    kept = rule.model_dump()
    present = values.astype(object).where(values.notna(), None)
    return present.map(lambda value: violation(kept, value) is not None).astype(bool)


def label_range(base_target: pd.Series, margin: float) -> tuple[float, float]:
    """The base target's range widened by ``margin`` of its width on each side."""
    low, high = float(base_target.min()), float(base_target.max())
    return low - margin * (high - low), high + margin * (high - low)


def admissible(
    rows: pd.DataFrame,
    rules: dict[str, ColumnRule],
    target: str,
    labels: tuple[float, float] | None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The labelled rows fit to learn from, and how many were kept out, by column.

    The spec's column rules hold on the source (a blocking check), but served records come from
    clients: one that breaks them was answered, yet trains and judges nothing. With ``labels``
    (regression), a label outside that range is kept out too, as ``target``.
    """
    keep = pd.Series(True, index=rows.index)
    kept_out: dict[str, int] = {}
    checks = [(c, breaks(rule, rows[c])) for c, rule in rules.items() if c in rows and c != target]
    if labels is not None:
        truth = pd.to_numeric(rows[target], errors="coerce")
        checks.append((target, ~truth.between(*labels)))
    for column, bad in checks:
        if (bad & keep).any():
            kept_out[column] = int((bad & keep).sum())
            keep &= ~bad
    return rows[keep].reset_index(drop=True), kept_out


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
