"""Baking: after a promotion, the new champion judged against the one it replaced, on live traffic.

The requests the new champion answered since the alias moved are replayed with the version it
replaced (``mlserve_assets.sensors.bake`` loads both as the service does), so both are scored on
the same requests and the gate's paired bootstrap applies. The verdict is pure: labelled requests
in, roll back or keep out, with the figures.

Looked at every few seconds, a test would almost surely cry wolf sooner or later. So the new
champion is judged only at milestones of labelled requests (``min_labels``, twice that, four
times...; the same first requests each time a milestone is looked at, so repeated looks add
nothing) and once more when the watch ends; each look uses ``(1 - confidence) / looks`` as its
one-sided error, so the chance that a version as good as the one it replaced is rolled back over
the whole watch stays below ``1 - confidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlserve_assets.ml.bootstrap import paired_gains
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec.watching import Bake


@dataclass(frozen=True)
class BakeVerdict:
    """Roll back or keep, why, and the figures (recorded with the move, tagged on the version)."""

    rollback: bool
    reason: str
    evidence: dict[str, object]


def looks(min_labels: int, most: int) -> int:
    """How many times a watch judges: one per milestone up to ``most`` labels, and the last."""
    return math.floor(math.log2(most / min_labels)) + 2


def milestone(labelled: int, min_labels: int, final: bool, most: int | None = None) -> int:
    """How many of the first labelled requests to judge on now (0: not yet).

    The largest milestone reached (up to ``most``); every label there is at the watch's end.
    """
    if labelled < min_labels:
        return 0
    if final:
        return labelled
    doublings = int(math.log2(min(labelled, most or labelled) / min_labels))
    return min_labels * 2**doublings


def paired_look(
    metric: Metric,
    truth: np.ndarray,
    ours: np.ndarray,
    theirs: np.ndarray,
    alpha: float,
    names: tuple[str, str],
    optimistic: bool = True,
) -> tuple[float, dict[str, object]]:
    """One look: a one-sided bound of ``ours``' improvement over ``theirs``, and the figures.

    ``optimistic``: the upper bound (is it surely worse?), else the lower (surely better?), each
    at ``alpha``. Baking's and the shadow's looks both, so they weigh evidence alike.
    """
    rng = np.random.default_rng(len(truth))  # the same requests give the same verdict
    gains = paired_gains(metric, truth, ours, theirs, rng)
    bound = float(np.quantile(gains, 1 - alpha if optimistic else alpha))
    a, b = float(metric.score(truth, ours)), float(metric.score(truth, theirs))
    return bound, {
        "labelled": len(truth),
        f"{names[0]}_{metric.name}": a,
        f"{names[1]}_{metric.name}": b,
        "improvement": metric.improvement(a, b),
        "improvement_bound": bound,
        "error_per_look": alpha,
    }


def judge(
    metric: Metric,
    rules: Bake,
    truth: np.ndarray,
    new: np.ndarray,
    old: np.ndarray,
    versions: tuple[str, str],
) -> BakeVerdict:
    """Whether the new champion (``new``'s answers) is worse than the old one past ``max_drop``.

    Rolled back when even the optimistic end of its improvement (the one-sided bound at this
    look's share of the error) is below ``-max_drop``.
    """
    ours, theirs = versions
    alpha = (1 - rules.confidence) / looks(rules.min_labels, rules.requests)
    bound, evidence = paired_look(metric, truth, new, old, alpha, (f"v{ours}", f"v{theirs}"))
    evidence["max_drop"] = rules.max_drop
    score_new, score_old = evidence[f"v{ours}_{metric.name}"], evidence[f"v{theirs}_{metric.name}"]
    figures = (
        f"{metric.name} {score_new:.4f} against v{theirs}'s {score_old:.4f} on the same "
        f"{len(truth)} labelled requests (improvement at best {bound:+.4f})"
    )
    if bound < -rules.max_drop:
        return BakeVerdict(True, f"v{ours} is worse than v{theirs}: {figures}", evidence)
    return BakeVerdict(False, f"v{ours} holds: {figures}", evidence)
