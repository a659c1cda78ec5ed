"""The selection metrics a spec may name, each with its task and the direction that is better.

One table serves training, the promotion gate and the live metric computed from feedback, so the
three can never disagree about what "better" means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn import metrics as skm

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Metric:
    """A scoring function of (y_true, y_pred) and whether larger values are better.

    ``per_row`` and ``aggregate``, where given, compute the same score as a reduction over one
    value per row (the mean of "correct", the root of the mean squared error): the bootstrap then
    scores a thousand resamples as one array operation instead of a thousand calls.
    """

    name: str
    task: Task
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray], float]
    per_row: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    aggregate: Callable[[np.ndarray], np.ndarray] | None = None

    def resampled(self, y_true: np.ndarray, y_pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The score on each resample; ``rows`` holds one resample's row indices per line."""
        if self.per_row is not None and self.aggregate is not None:
            return self.aggregate(self.per_row(y_true, y_pred)[rows])
        return np.array([self.score(y_true[r], y_pred[r]) for r in rows])

    def improvement(self, new: float, old: float) -> float:
        """How much better ``new`` is than ``old``, positive when better whatever the direction."""
        return new - old if self.higher_is_better else old - new

    def rank(self, value: float) -> tuple[bool, float]:
        """A sort key: the best value first, a non-finite one last (never best)."""
        if not math.isfinite(value):
            return (True, 0.0)
        return (False, -value if self.higher_is_better else value)

    def meets(self, value: float, threshold: float) -> bool:
        """Whether ``value`` is at least as good as ``threshold`` (a non-finite value never is)."""
        if not math.isfinite(value):
            return False
        return value >= threshold if self.higher_is_better else value <= threshold


def _rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=-1)


def _root_mean(values: np.ndarray) -> np.ndarray:
    return np.sqrt(values.mean(axis=-1))


def _correct(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (y == p).astype(float)


def _absolute_error(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(y.astype(float) - p.astype(float))


def _squared_error(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (y.astype(float) - p.astype(float)) ** 2


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, skm.accuracy_score, _correct, _mean),
        Metric("balanced_accuracy", "classification", True, skm.balanced_accuracy_score),
        Metric(
            "f1_macro",
            "classification",
            True,
            lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
        ),
        Metric("rmse", "regression", False, _rmse, _squared_error, _root_mean),
        Metric("mae", "regression", False, skm.mean_absolute_error, _absolute_error, _mean),
        Metric("r2", "regression", True, skm.r2_score),
    )
}


def get_metric(name: str) -> Metric:
    """Look a metric up by the name used in specs."""
    return METRICS[name]
