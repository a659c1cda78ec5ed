"""The promotion gate: the one rule deciding whether a challenger may become ``champion``.

Challenger and champion are judged on the same held-out rows: the recent labels held out for the
gate (the traffic being served) and, at ``gate.base_weight``, the base test split. A paired
bootstrap over those rows gives an interval of the challenger's improvement, and the challenger is
promoted only when the interval's lower end clears ``gate.min_improvement``: a win that noise could
explain moves nothing. ``decide`` is pure so that it can be property-tested on its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor

from mlserve_assets.ml.bootstrap import RESAMPLES, interval_of, paired_gains
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.replay import Replayed, replay_newest
from mlserve_assets.ml.split import DatasetSplit, Holdout, Rows, weighted_holdouts
from mlserve_assets.spec.models import Gate


@dataclass(frozen=True)
class Evidence:
    """Both models' scores on each holdout, the weighted scores, and the improvement interval."""

    challenger: float
    champion: float | None
    interval: tuple[float, float] | None
    confidence: float
    parts: dict[str, dict[str, float | int | None]]


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
    interval: tuple[float, float] | None = None
    unproven: bool = False
    """Held only for lack of evidence: better on the holdouts, not surely. Worth a shadow."""

    def serving_version(self, challenger: str, current: str | None) -> str | None:
        """The version that serves after this decision (None while nothing has passed)."""
        return challenger if self.promote else current


def gate_holdouts(
    data: DatasetSplit,
    gate: Gate,
    served_since: float = 0.0,
    trusted: Collection[str] = (),
) -> list[Holdout]:
    """The recent gate labels and the base test rows, weighted; base alone without feedback.

    Recent means the traffic since the champion was trained (labels after ``served_since``, its
    training's latest label): under a drift that keeps moving, older labels describe a concept
    that no longer serves. With none since, every gate label counts.

    A sender over ``gate.source_share`` of the recent labels (not ``trusted``) is its own holdout
    at that share of the recent weight, and the weight it could not carry goes to the base rows,
    which no label sender can touch.
    """
    recent = data.feedback_gate
    senders = np.asarray(data.feedback_gate_senders, dtype=object)
    newer = np.asarray(data.feedback_gate_received) > served_since
    if newer.any():
        recent, senders = recent.take(newer), senders[newer]
    if not len(recent):
        return weighted_holdouts(recent, data.base_test, gate.base_weight)
    share, weight = gate.source_share, 1.0 - gate.base_weight
    parts_of = {s: n / len(senders) for s, n in Counter(senders).items()}
    bounded = sorted(s for s, part in parts_of.items() if part > share and s not in trusted)
    free = ~np.isin(senders, bounded)
    parts = [Holdout("recent", recent.take(free), weight * float(np.mean(free)))]
    parts += [
        Holdout(f"recent_key_{s}", recent.take(senders == s), weight * share) for s in bounded
    ]
    lost = sum(parts_of[s] - share for s in bounded)
    parts.append(Holdout("base", data.base_test, gate.base_weight + weight * lost))
    return [h for h in parts if h.weight > 0 and len(h.rows)]


def weigh(
    metric: Metric,
    holdouts: list[Holdout],
    challenger: BaseEstimator,
    champion: BaseEstimator | None,
    confidence: float,
    seed: int = 0,
) -> Evidence:
    """Both models on the holdouts, and a paired bootstrap interval of the improvement.

    Each holdout is resampled on its own (``paired_gains``) and the gains weighed like the scores.
    """
    rng = np.random.default_rng(seed)
    improvement = np.zeros(RESAMPLES)
    parts: dict[str, dict[str, float | int | None]] = {}
    totals = [0.0, 0.0]
    for holdout in holdouts:
        y = holdout.rows.y.to_numpy()
        ours = challenger.predict(holdout.rows.x)
        theirs = None if champion is None else champion.predict(holdout.rows.x)
        part = {
            "rows": len(y),
            "weight": holdout.weight,
            "challenger": float(metric.score(y, ours)),
            "champion": None if theirs is None else float(metric.score(y, theirs)),
        }
        parts[holdout.name] = part
        totals[0] += holdout.weight * part["challenger"]
        if theirs is not None:
            totals[1] += holdout.weight * part["champion"]
            gain = paired_gains(metric, y, ours, theirs, rng)
            improvement += holdout.weight * gain
    interval = None if champion is None else interval_of(improvement, confidence)
    return Evidence(
        challenger=totals[0],
        champion=None if champion is None else totals[1],
        interval=interval,
        confidence=confidence,
        parts=parts,
    )


def judge(
    metric: Metric,
    gate: Gate,
    data: DatasetSplit,
    challenger: BaseEstimator,
    champion: BaseEstimator | None,
    served_since: float = 0.0,
    trusted: Collection[str] = (),
) -> tuple[GateDecision, Evidence]:
    """The gate on a training's split: both models weighed on its holdouts, then the verdict.

    The bootstrap is seeded by the data's version, so the same rows get the same verdict.
    ``trusted`` are the label senders exempt from ``gate.source_share``.
    """
    holdouts = gate_holdouts(data, gate, served_since, trusted)
    seed = int(data.data_version[:8], 16)
    evidence = weigh(metric, holdouts, challenger, champion, gate.confidence, seed)
    beats_constant = None
    if evidence.champion is not None and not (
        metric.meets(evidence.challenger, gate.threshold)
        or metric.meets(evidence.champion, gate.threshold)
    ):
        versus = weigh(
            metric, holdouts, challenger, constant_answer(data, metric), gate.confidence, seed
        )
        assert versus.interval is not None and versus.champion is not None
        beats_constant = versus.interval[0] > 0
        evidence.parts["constant"] = {
            "rows": sum(len(h.rows) for h in holdouts),
            "weight": 0.0,
            "score": versus.champion,
            "improvement_low": versus.interval[0],
        }
    replayed = (
        None
        if gate.replay_last is None or champion is None
        else replay_newest(metric, data, gate.replay_last, challenger, champion)
    )
    if replayed is not None:
        evidence.parts["replay"] = {
            "rows": replayed.rows,
            "weight": 0.0,
            "challenger": replayed.challenger,
            "champion": replayed.champion,
        }
    decision = decide(
        metric,
        evidence.challenger,
        evidence.champion,
        gate,
        evidence.interval,
        replayed,
        beats_constant,
    )
    return decision, evidence


def constant_answer(data: DatasetSplit, metric: Metric) -> BaseEstimator:
    """What answering without the features gives: the training labels' mean or commonest class.

    The trivial model ``gate.threshold`` stands for, read on the rows themselves where the bar
    cannot tell (``decide``).
    """
    rows = Rows.join(data.base_train, data.base_select, data.feedback_fit)
    if metric.task == "classification":
        return DummyClassifier(strategy="most_frequent").fit(rows.x, rows.y)
    return DummyRegressor().fit(rows.x, rows.y)


def decide(
    metric: Metric,
    challenger: float,
    champion: float | None,
    gate: Gate,
    interval: tuple[float, float] | None = None,
    replayed: Replayed | None = None,
    beats_constant: bool | None = None,
) -> GateDecision:
    """Promote only past ``gate.threshold`` AND ahead of the champion by ``gate.min_improvement``.

    Both scores must come from the same held-out rows; with an ``interval`` of the improvement,
    its lower end must clear the margin too; with ``replayed``, the challenger must not be worse on
    the newest labelled requests either (``gate.replay_last``).

    The threshold stands for "better than answering without the features". Where the champion
    misses it too, the rows cannot tell (r2 on a month of winter, against that month's own mean,
    is below zero for any model a degree off): there, with ``beats_constant`` (proven better than
    the training labels' mean or commonest class on the same rows, ``constant_answer``), the
    comparison decides; a model of random labels beats no constant, and stays held.

    A non-finite score on either side never promotes, and a tie never moves the alias: churn
    without gain only makes rollbacks harder to read. Every rule of the gate lives here and reads
    the spec's ``Gate``, so a new rule is one field and one branch.
    """
    threshold, min_improvement = gate.threshold, gate.min_improvement
    gain = None if champion is None else metric.improvement(challenger, champion)

    def verdict(promote: bool, reason: str, unproven: bool = False) -> GateDecision:
        return GateDecision(
            promote,
            reason,
            metric.name,
            challenger,
            threshold,
            champion,
            min_improvement,
            gain,
            interval,
            unproven,
        )

    if not math.isfinite(challenger):
        return verdict(False, f"challenger {metric.name} is not a finite number ({challenger})")
    unreadable = champion is not None and not metric.meets(champion, threshold)
    if not metric.meets(challenger, threshold) and not (unreadable and beats_constant):
        word = "below" if metric.higher_is_better else "above"
        reason = (
            f"challenger {metric.name}={challenger:.4f} is {word} the threshold {threshold:.4f}"
        )
        if unreadable and beats_constant is False:
            reason += ", as the champion is, and not surely better than a constant answer"
        return verdict(False, reason)
    if champion is None:
        return verdict(True, f"no champion yet; {metric.name}={challenger:.4f} meets the threshold")
    if not math.isfinite(champion):
        return verdict(
            False, f"champion's {metric.name} is not finite ({champion}): nothing to compare with"
        )
    if gain is None or not gain > 0 or gain < min_improvement:
        return verdict(
            False,
            f"challenger {metric.name}={challenger:.4f} does not beat champion {champion:.4f} "
            f"by {min_improvement:.4f} (improvement {gain:+.4f})",
        )
    if interval is not None and not (interval[0] > 0 and interval[0] >= min_improvement):
        return verdict(
            False,
            f"challenger {metric.name}={challenger:.4f} beats champion {champion:.4f} by "
            f"{gain:+.4f}, but the {gate.confidence:.0%} interval of the improvement "
            f"[{interval[0]:+.4f}, {interval[1]:+.4f}] does not clear {min_improvement:.4f}",
            unproven=True,
        )
    if replayed is not None and not (
        metric.improvement(replayed.challenger, replayed.champion) >= 0
    ):
        return verdict(
            False,
            f"challenger {metric.name}={challenger:.4f} beats champion {champion:.4f}, but "
            f"on the newest {replayed.rows} labelled requests (gate.replay_last) its "
            f"{metric.name}={replayed.challenger:.4f} is worse than the champion's "
            f"{replayed.champion:.4f}",
        )
    return verdict(
        True,
        f"challenger {metric.name}={challenger:.4f} beats champion {champion:.4f} "
        f"by {gain:+.4f} (needed {min_improvement:.4f})"
        + (
            ""
            if interval is None
            else f"; {gate.confidence:.0%} interval [{interval[0]:+.4f}, {interval[1]:+.4f}]"
        ),
    )
