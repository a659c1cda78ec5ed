"""The promotion gate: the one rule deciding whether a challenger may become ``champion``.

A pure function so that it can be property-tested on its own: whatever the metric's direction,
a challenger that is worse than the champion on the same held-out data is never promoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec import Gate


@dataclass(frozen=True)
class GateDecision:
    """The verdict and every figure it rests on, for the asset metadata and the MLflow tags."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    threshold: float
    champion: float | None
    min_improvement: float
    improvement: float | None

    def serving_version(self, challenger: str, current: str | None) -> str | None:
        """The version that serves after this decision (None while nothing has passed)."""
        return challenger if self.promote else current


def decide(metric: Metric, challenger: float, champion: float | None, gate: Gate) -> GateDecision:
    """Promote only past ``gate.threshold`` AND ahead of the champion by ``gate.min_improvement``.

    Both scores must come from the same held-out rows. A non-finite score never promotes, and a tie
    never moves the alias: churn without gain only makes rollbacks harder to read. Every rule of the
    gate lives here and reads the spec's ``Gate``, so a new rule is one field and one branch.
    """
    threshold, min_improvement = gate.threshold, gate.min_improvement
    gain = None if champion is None else metric.improvement(challenger, champion)

    def verdict(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote, reason, metric.name, challenger, threshold, champion, min_improvement, gain
        )

    if not math.isfinite(challenger):
        return verdict(False, f"challenger {metric.name} is not a finite number ({challenger})")
    if not metric.meets(challenger, threshold):
        word = "below" if metric.higher_is_better else "above"
        return verdict(
            False,
            f"challenger {metric.name}={challenger:.4f} is {word} the threshold {threshold:.4f}",
        )
    if champion is None:
        return verdict(True, f"no champion yet; {metric.name}={challenger:.4f} meets the threshold")
    if not math.isfinite(champion):
        return verdict(True, f"champion's {metric.name} is not finite ({champion}); challenger is")
    if gain is None or not gain > 0 or gain < min_improvement:
        return verdict(
            False,
            f"challenger {metric.name}={challenger:.4f} does not beat champion {champion:.4f} "
            f"by {min_improvement:.4f} (improvement {gain:+.4f})",
        )
    return verdict(
        True,
        f"challenger {metric.name}={challenger:.4f} beats champion {champion:.4f} "
        f"by {gain:+.4f} (needed {min_improvement:.4f})",
    )
