"""Ranking a training's candidates by the spec's metric: the one place "best" is decided."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlserve_assets.ml.metrics import Metric


@dataclass(frozen=True)
class CandidateResult:
    """A candidate as trained and logged: what the leaderboard and registration need."""

    name: str
    score: float
    run_id: str
    model_uri: str
    estimator: str


@dataclass(frozen=True)
class Leaderboard:
    """All candidates of one training, best first by the spec's metric."""

    parent_run_id: str
    metric: str
    results: list[CandidateResult]

    @classmethod
    def ranked(
        cls, parent_run_id: str, metric: Metric, results: list[CandidateResult]
    ) -> Leaderboard:
        """Best first in the metric's direction; a non-finite score ranks last, never best."""

        def order(result: CandidateResult) -> tuple[bool, float]:
            finite = math.isfinite(result.score)
            value = result.score if metric.higher_is_better else -result.score
            return (not finite, -value if finite else 0.0)

        return cls(parent_run_id, metric.name, sorted(results, key=order))

    @property
    def best(self) -> CandidateResult:
        """The winner."""
        return self.results[0]

    def markdown(self) -> str:
        """A table for the Dagster UI."""
        rows = [
            f"| {r.name} | {r.estimator} | {r.score:.4f} | `{r.run_id}` |" for r in self.results
        ]
        header = f"| candidate | estimator | {self.metric} | MLflow run |\n|---|---|---|---|"
        return "\n".join([header, *rows])
