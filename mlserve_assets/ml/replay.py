"""Replay: registered versions scored on logged, labelled requests, beside what served them.

The requests are the ones the service answered and clients labelled, as the log holds them: the
versions that answered them live are the baseline ("served"), and each replayed version's
improvement over it comes with the gate's paired bootstrap interval over the same requests
(``mlserve_assets.ml.bootstrap.paired_gains``), so a difference noise could explain shows as one.
Scoring the versions is the caller's (the CLI scores through the serving path); this is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from mlserve_assets.ml.bootstrap import interval_of, paired_gains
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.split import DatasetSplit


def window(labelled: pd.DataFrame, last: int | None, since: float | None) -> pd.DataFrame:
    """The labelled requests made at or after ``since`` (a time), the ``last`` labelled of them.

    ``labelled`` is ``PredictionStore.labelled``'s frame, oldest label first.
    """
    if since is not None:
        labelled = labelled[labelled["created_at"] >= since]
    if last is not None:
        labelled = labelled.tail(last)
    return labelled.reset_index(drop=True)


@dataclass(frozen=True)
class VersionScore:
    """One replayed version: its score, and its improvement over the served answers."""

    version: str
    score: float
    gain: float
    interval: tuple[float, float]


@dataclass(frozen=True)
class ReplayReport:
    """Every replayed version, best first, beside the served answers on the same requests."""

    model: str
    metric: str
    requests: int
    served: float
    served_by: dict[str, int]
    versions: list[VersionScore]
    confidence: float

    def as_dict(self) -> dict[str, object]:
        """The report for ``--json``."""
        return {
            "model": self.model,
            "metric": self.metric,
            "requests": self.requests,
            "served": {"score": self.served, "by_version": self.served_by},
            "confidence": self.confidence,
            "versions": [
                {"version": v.version, "score": v.score, "gain": v.gain, "interval": v.interval}
                for v in self.versions
            ],
        }

    def lines(self) -> list[str]:
        """The report as the operator reads it."""
        by = ", ".join(f"v{v}: {n}" for v, n in sorted(self.served_by.items(), key=_number))
        head = f"{'version':>8}  {self.metric:>10}  improvement over served ({self.confidence:.0%})"
        rows = [
            f"{'v' + v.version:>8}  {v.score:>10.4f}  "
            f"{v.gain:+.4f} [{v.interval[0]:+.4f}, {v.interval[1]:+.4f}]"
            for v in self.versions
        ]
        return [
            f"replay of {self.model} on {self.requests} labelled logged requests",
            head,
            *rows,
            f"{'served':>8}  {self.served:>10.4f}  (answered by {by})",
        ]


def _number(item: tuple[str, int]) -> int:
    return int(item[0]) if item[0].isdigit() else 0


def replay(
    model: str,
    metric: Metric,
    requests: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    confidence: float = 0.9,
) -> ReplayReport:
    """Each version's ``predictions`` for ``requests`` scored against their labels, ranked.

    ``requests`` holds ``ground_truth``, ``prediction`` (what was answered) and
    ``model_version`` (who answered) per request. The bootstrap is seeded by the requests'
    count, so the same window gets the same intervals.
    """
    truth = requests["ground_truth"].to_numpy()
    answered = requests["prediction"].to_numpy()
    served = float(metric.score(truth, answered))
    scored = []
    for version, ours in predictions.items():
        score = float(metric.score(truth, ours))
        # The same resamples for every version: their intervals are comparable.
        rng = np.random.default_rng(len(truth))
        gains = paired_gains(metric, truth, np.asarray(ours), answered, rng)
        gain = metric.improvement(score, served)
        scored.append(VersionScore(version, score, gain, interval_of(gains, confidence)))
    scored.sort(key=lambda s: metric.rank(s.score))
    counts = requests["model_version"].astype(str).value_counts()
    return ReplayReport(
        model,
        metric.name,
        len(truth),
        served,
        {str(v): int(n) for v, n in counts.items()},
        scored,
        confidence,
    )


@dataclass(frozen=True)
class Replayed:
    """Both versions on the newest held-out labelled requests (``gate.replay_last``)."""

    rows: int
    challenger: float
    champion: float


def replay_newest(
    metric: Metric,
    data: DatasetSplit,
    last: int,
    challenger: BaseEstimator,
    champion: BaseEstimator,
) -> Replayed | None:
    """Both versions scored on the newest ``last`` gate labels, by when each label arrived.

    None without gate labels: before any request is labelled there is nothing to replay, and the
    rule must not keep a first retraining on base rows from ever promoting.
    """
    rows = data.feedback_gate
    if not len(rows):
        return None
    newest = np.zeros(len(rows), dtype=bool)
    newest[np.argsort(np.asarray(data.feedback_gate_received), kind="stable")[-last:]] = True
    rows = rows.take(newest)
    y = rows.y.to_numpy()
    return Replayed(
        rows=len(y),
        challenger=float(metric.score(y, challenger.predict(rows.x))),
        champion=float(metric.score(y, champion.predict(rows.x))),
    )
