"""Fitting and scoring: every candidate on every mix, scored on the selection rows.

Plain functions of data and spec, with no tracking or Dagster, so the leaderboard's figures and
the gate's inputs are testable without an MLflow store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from mlserve_assets.candidates import Candidate, final_step
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.mixes import Mix, TrainingSet, mixes_for
from mlserve_assets.ml.split import DatasetSplit, Rows, weighted_holdouts
from mlserve_assets.spec import RetrainData

# Below this many rows a feedback-only mix is not tried: a model fitted on a handful of labels
# says more about the handful than about the traffic.
MIN_MIX_ROWS = 20


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate fitted on one mix, with its selection score."""

    name: str
    mix: str
    estimator: BaseEstimator
    score: float
    fit_seconds: float
    rows: int


@dataclass(frozen=True)
class Skipped:
    """A candidate x mix that was not fitted, and why."""

    name: str
    mix: str
    reason: str


@dataclass
class Selection:
    """Every candidate x mix tried: fitted ones best first, skipped ones with their reason."""

    fitted: list[FittedCandidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def selection_score(
    estimator: BaseEstimator, data: DatasetSplit, metric: Metric, base_weight: float
) -> float:
    """Score on the selection rows: the recent labels, with the base rows at ``base_weight``."""
    parts = weighted_holdouts(data.feedback_select, data.base_select, base_weight)
    return sum(h.weight * score(estimator, h.rows, metric) for h in parts)


def _unusable(candidate: Candidate, mix: Mix, train: TrainingSet, classification: bool) -> str:
    if mix.needs_weights and not candidate.accepts_sample_weight():
        return "the estimator takes no sample weights"
    if mix.name != "base" and len(train.rows) < MIN_MIX_ROWS:
        return f"{len(train.rows)} rows, fewer than {MIN_MIX_ROWS}"
    if classification and train.rows.y.nunique() < 2:
        return "one class only"
    return ""


def select_candidates(
    candidates: list[Candidate],
    data: DatasetSplit,
    metric: Metric,
    policy: RetrainData,
    base_weight: float,
) -> Selection:
    """Fit every candidate on every mix's training rows and score each on the selection rows."""
    selection = Selection()
    classification = metric.task == "classification"
    for mix in mixes_for(policy, data):
        train = mix.build(data.base_train, data.feedback_train, policy)
        for candidate in candidates:
            reason = _unusable(candidate, mix, train, classification)
            if reason:
                selection.skipped.append(Skipped(candidate.name, mix.name, reason))
                continue
            estimator, seconds = fit(candidate, train, data.preparation())
            value = selection_score(estimator, data, metric, base_weight)
            selection.fitted.append(
                FittedCandidate(
                    candidate.name, mix.name, estimator, value, seconds, len(train.rows)
                )
            )
    return selection


def fit(
    candidate: Candidate, train: TrainingSet, prepare: ColumnTransformer | None = None
) -> tuple[BaseEstimator, float]:
    """A fresh estimator, behind ``prepare`` when given, fitted on the set.

    Sample weights go to the final estimator, however deep the Pipelines nest.
    """
    estimator = candidate.build()
    if prepare is not None:
        estimator = Pipeline([("prepare", prepare), ("model", estimator)])
    started = time.perf_counter()
    x, y = train.rows.x, train.rows.y
    if train.weight is None:
        estimator.fit(x, y)
    else:
        prefix, _ = final_step(estimator)
        estimator.fit(x, y, **{"__".join(filter(None, [prefix, "sample_weight"])): train.weight})
    return estimator, time.perf_counter() - started


def score(estimator: BaseEstimator, rows: Rows, metric: Metric) -> float:
    """The metric on some rows."""
    return float(metric.score(rows.y.to_numpy(), estimator.predict(rows.x)))
