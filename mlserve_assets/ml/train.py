"""Splitting, fitting and scoring: plain functions of data and spec, with no tracking or Dagster.

Keeping these pure lets the gate's inputs (scores on held-out rows) be tested without an MLflow
store, and lets the assets stay thin wiring around them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlserve_assets.candidates import Candidate
from mlserve_assets.ml.feedback import in_holdout
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec import RetrainData, Split


@dataclass(frozen=True)
class DatasetSplit:
    """Train and held-out rows; the held-out rows score every candidate and the champion."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    data_version: str
    train_weight: np.ndarray | None = None
    feedback_train_rows: int = 0
    feedback_test_rows: int = 0
    feedback_watermark: float = 0.0

    @property
    def features(self) -> list[str]:
        """Feature names in the order the model sees them."""
        return list(self.x_train.columns)


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate after fitting, with its held-out score."""

    name: str
    estimator: BaseEstimator
    score: float
    fit_seconds: float


def data_version(frame: pd.DataFrame) -> str:
    """A content hash of the rows, stable across processes, to tag runs with the data they saw."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


def split_dataset(
    frame: pd.DataFrame, features: list[str], target: str, split: Split
) -> DatasetSplit:
    """Hold out ``split.test_size`` of the rows, stratified on the target when asked."""
    stratify = frame[target] if split.stratify else None
    x_train, x_test, y_train, y_test = train_test_split(
        frame[features],
        frame[target],
        test_size=split.test_size,
        random_state=split.seed,
        stratify=stratify,
    )
    return DatasetSplit(x_train, y_train, x_test, y_test, data_version(frame))


def fit_candidate(candidate: Candidate, data: DatasetSplit, metric: Metric) -> FittedCandidate:
    """Fit a fresh estimator on the training rows and score it on the held-out rows."""
    estimator = candidate.build()
    started = time.perf_counter()
    if data.train_weight is None:
        estimator.fit(data.x_train, data.y_train)
    else:
        _fit_weighted(estimator, data.x_train, data.y_train, data.train_weight)
    elapsed = time.perf_counter() - started
    return FittedCandidate(candidate.name, estimator, score(estimator, data, metric), elapsed)


def _fit_weighted(
    estimator: BaseEstimator, x: pd.DataFrame, y: pd.Series, weight: np.ndarray
) -> None:
    """Sample weights go to the final step of a Pipeline, where estimators accept them."""
    if isinstance(estimator, Pipeline):
        last = estimator.steps[-1][0]
        estimator.fit(x, y, **{f"{last}__sample_weight": weight})
    else:
        estimator.fit(x, y, sample_weight=weight)


def with_feedback(
    base: DatasetSplit, feedback: pd.DataFrame, target: str, policy: RetrainData
) -> DatasetSplit:
    """Add labelled feedback to a base split as the spec's retraining policy says.

    A stable share of the feedback (``holdout_fraction``, chosen by id) joins the held-out rows,
    so challenger and champion are judged on recent traffic too; under ``feedback_only`` it is
    the whole test set, since the old distribution is declared no longer to matter.
    """
    if feedback.empty:
        return base
    held = feedback["prediction_id"].map(lambda i: in_holdout(i, policy.holdout_fraction))
    features = base.features
    fb_train, fb_test = feedback[~held], feedback[held]
    if fb_train.empty or fb_test.empty:
        return base
    if policy.policy == "feedback_only":
        x_train, y_train = fb_train[features], fb_train[target]
        x_test, y_test = fb_test[features], fb_test[target]
        weight = None
    else:
        x_train = pd.concat([base.x_train, fb_train[features]], ignore_index=True)
        y_train = pd.concat([base.y_train, fb_train[target]], ignore_index=True)
        x_test = pd.concat([base.x_test, fb_test[features]], ignore_index=True)
        y_test = pd.concat([base.y_test, fb_test[target]], ignore_index=True)
        weight = None
        if policy.policy == "weighted":
            weight = np.concatenate(
                [np.ones(len(base.x_train)), np.full(len(fb_train), policy.feedback_weight)]
            )
    y_train = y_train.astype(base.y_train.dtype)
    y_test = y_test.astype(base.y_test.dtype)
    return DatasetSplit(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        data_version=data_version(
            pd.concat([x_train.assign(_y=y_train), x_test.assign(_y=y_test)])
        ),
        train_weight=weight,
        feedback_train_rows=len(fb_train),
        feedback_test_rows=len(fb_test),
        feedback_watermark=float(feedback["received_at"].max()),
    )


def score(estimator: BaseEstimator, data: DatasetSplit, metric: Metric) -> float:
    """The metric on the held-out rows."""
    return float(metric.score(data.y_test.to_numpy(), estimator.predict(data.x_test)))
