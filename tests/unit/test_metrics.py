"""Each metric's scores over many resamples at once equal scikit-learn's score of each resample.

The gate, replay, baking and the shadow read their intervals from ``Metric.resampled``; scikit-learn
is the independent computation. Small tables make the edge cases common: a resample whose truth is
constant (r2), one missing a class, answers naming a class the truth lacks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mlserve_assets.ml.metrics import METRICS, get_metric

CLASSES = np.array(["no", "yes", "maybe"])


def _tables(task: str, seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if task == "regression":
        truth = rng.integers(0, 3, rows).astype(float)  # few values: constant resamples occur
        return truth, truth + rng.choice([0.0, 0.5, -2.0], rows)
    truth = CLASSES[rng.choice(3, rows, p=[0.7, 0.25, 0.05])]
    return truth, np.where(rng.random(rows) < 0.6, truth, CLASSES[rng.integers(0, 3, rows)])


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("rows", [3, 40])
def test_resampled_scores_equal_scikit_learns_for_each_resample(name: str, rows: int) -> None:
    metric = get_metric(name)
    for seed in range(8):
        truth, answers = _tables(metric.task, seed, rows)
        drawn = np.random.default_rng(seed).integers(0, rows, size=(15, rows))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns of the classes a resample lacks
            expected = [metric.score(truth[r], answers[r]) for r in drawn]
        np.testing.assert_allclose(metric.resampled(truth, answers, drawn), expected, atol=1e-12)


def test_each_line_is_scored_on_its_own() -> None:
    metric = get_metric("balanced_accuracy")
    truth = np.array([["no", "yes", "yes"], ["yes", "yes", "yes"]])
    answers = np.array([["no", "no", "yes"], ["yes", "no", "no"]])
    # By hand: line one recalls "no" 1/1 and "yes" 1/2; line two holds "yes" only, 1/3.
    np.testing.assert_allclose(metric.each(truth, answers), [0.75, 1 / 3])
