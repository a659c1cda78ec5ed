"""The paired bootstrap every comparison of two versions uses: the gate, replay, baking, shadow.

One home, so the gate and the looks after a promotion weigh evidence alike.
"""

from __future__ import annotations

import numpy as np

from mlserve_assets.ml.metrics import Metric

RESAMPLES = 1000


def paired_gains(
    metric: Metric, y: np.ndarray, ours: np.ndarray, theirs: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One model's improvement over another on each of ``RESAMPLES`` resamples of the rows.

    Paired: each resample draws the same rows for both, so the spread measures their
    difference on the same cases rather than each one's own noise.
    """
    rows = rng.integers(0, len(y), size=(RESAMPLES, len(y)))
    return metric.improvement(metric.resampled(y, ours, rows), metric.resampled(y, theirs, rows))


def interval_of(gains: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of resampled improvements."""
    alpha = 1 - confidence
    low, high = np.quantile(gains, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
