"""Splitting, fitting and scoring: plain functions of data and spec, with no tracking or Dagster.

Keeping these pure lets the gate's inputs (scores on held-out rows) be tested without an MLflow
store, and lets the assets stay thin wiring around them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec import Candidate, Split


@dataclass(frozen=True)
class DatasetSplit:
    """Train and held-out rows; the held-out rows score every candidate and the champion."""

    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series
    data_version: str

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
    estimator.fit(data.x_train, data.y_train)
    elapsed = time.perf_counter() - started
    return FittedCandidate(candidate.name, estimator, score(estimator, data, metric), elapsed)


def score(estimator: BaseEstimator, data: DatasetSplit, metric: Metric) -> float:
    """The metric on the held-out rows."""
    return float(metric.score(data.y_test.to_numpy(), estimator.predict(data.x_test)))
