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

    ``score`` is scikit-learn's, for one set of rows. ``lines`` computes the same score for each
    line of two 2-D arrays at once (classes as integer codes), so that the bootstrap scores a
    thousand resamples as one array operation: calling scikit-learn a thousand times took 2-3.6 s
    per holdout for r2, which is most of a gate, against milliseconds
    (``tests/unit/test_metrics.py`` holds each to scikit-learn's).
    """

    name: str
    task: Task
    higher_is_better: bool
    score: Callable[[np.ndarray, np.ndarray], float]
    lines: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def resampled(self, y_true: np.ndarray, y_pred: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The score on each resample; ``rows`` holds one resample's row indices per line."""
        y_true, y_pred = self._comparable(y_true, y_pred)
        return self.lines(y_true[rows], y_pred[rows])

    def each(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The score of each line of two 2-D arrays of the same shape."""
        return self.lines(*self._comparable(y_true, y_pred))

    def _comparable(self, y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numbers as floats; classes as codes shared by both arrays (text compares slowly)."""
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if self.task == "regression":
            return y_true.astype(float), y_pred.astype(float)
        both = np.concatenate([y_true.ravel(), y_pred.ravel()])
        codes = np.unique(both, return_inverse=True)[1].reshape(2, -1)
        return codes[0].reshape(y_true.shape), codes[1].reshape(y_pred.shape)

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


def _accuracy_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (y == p).mean(axis=-1)


def _rmse_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(((y - p) ** 2).mean(axis=-1))


def _mae_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.abs(y - p).mean(axis=-1)


def _r2_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """As scikit-learn's ``r2_score``: a constant truth scores 1 if matched exactly, else 0."""
    residual = ((y - p) ** 2).sum(axis=-1)
    total = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    constant = total == 0
    score = 1 - residual / np.where(constant, 1, total)
    return np.where(constant, np.where(residual == 0, 1.0, 0.0), score)


def _class_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class code (first axis) and line: true positives, times true, times predicted."""
    classes = np.arange(int(max(y.max(initial=0), p.max(initial=0))) + 1)
    shape = (len(classes),) + (1,) * y.ndim
    is_true, is_predicted = y == classes.reshape(shape), p == classes.reshape(shape)
    return (
        (is_true & is_predicted).sum(axis=-1),
        is_true.sum(axis=-1),
        is_predicted.sum(axis=-1),
    )


def _balanced_accuracy_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The mean recall over the classes each line's truth holds (scikit-learn drops the rest)."""
    hits, true, _ = _class_counts(y, p)
    held = true > 0
    recall = np.where(held, hits / np.where(held, true, 1), 0.0)
    return recall.sum(axis=0) / held.sum(axis=0)


def _f1_macro_lines(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The mean F1 over the classes each line's truth or answers hold; 0 where none is right."""
    hits, true, predicted = _class_counts(y, p)
    seen = (true + predicted) > 0
    f1 = np.where(seen, 2 * hits / np.where(seen, true + predicted, 1), 0.0)
    return f1.sum(axis=0) / seen.sum(axis=0)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "classification", True, skm.accuracy_score, _accuracy_lines),
        Metric(
            "balanced_accuracy",
            "classification",
            True,
            skm.balanced_accuracy_score,
            _balanced_accuracy_lines,
        ),
        Metric(
            "f1_macro",
            "classification",
            True,
            lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
            _f1_macro_lines,
        ),
        Metric("rmse", "regression", False, _rmse, _rmse_lines),
        Metric("mae", "regression", False, skm.mean_absolute_error, _mae_lines),
        Metric("r2", "regression", True, skm.r2_score, _r2_lines),
    )
}


def get_metric(name: str) -> Metric:
    """Look a metric up by the name used in specs."""
    return METRICS[name]
