"""A classifier's metric estimated without labels, from the probabilities it logged.

If the probabilities are calibrated, each record's true class is a draw from them, so the metric's
expected value is the mean over labels drawn that way (the idea of NannyML's confidence-based
performance estimation, by sampling, so that it serves every classification metric in
``ml.metrics`` and not only accuracy). It reads nothing but the log, so it moves as soon as the
traffic does, long before labels; its error is the model's miscalibration, which is why it is
reported beside the live metric and does not decide a rollback on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlserve_assets.ml.metrics import Metric

DRAWS = 200


def estimated_score(
    metric: Metric,
    predictions: Sequence[object],
    probabilities: Sequence[dict[str, float] | None],
    seed: int = 0,
) -> float | None:
    """The metric's expected value if each record's class were drawn from its probabilities.

    None when any record has no probabilities (a regression, a classifier without
    ``predict_proba``) or there are no records. Classes are compared as text, as the log keys them.
    """
    rows = [p for p in probabilities if p is not None]
    if not rows or len(rows) < len(predictions):
        return None
    classes = sorted({c for p in rows for c in p})
    table = np.array([[p.get(c, 0.0) for c in classes] for p in rows])
    table = np.clip(table, 0, None)
    table /= table.sum(axis=1, keepdims=True)
    predicted = np.array([str(p) for p in predictions])
    rng = np.random.default_rng(seed)
    # Inverse-CDF sampling: one uniform per record and draw, looked up in each row's cumulative sum.
    cumulative = table.cumsum(axis=1)
    uniforms = rng.random((DRAWS, len(predicted), 1))
    drawn = (uniforms > cumulative[None, :, :]).sum(axis=2).clip(max=len(classes) - 1)
    names = np.array(classes)
    return float(metric.each(names[drawn], np.broadcast_to(predicted, drawn.shape)).mean())
