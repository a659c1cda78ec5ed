"""Ranking trials (candidate x data mix) by the spec's metric: the one place "best" is decided."""

from __future__ import annotations

from dataclasses import dataclass

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.train import Skipped


@dataclass(frozen=True)
class CandidateResult:
    """One candidate fitted on one mix, scored on the selection rows and logged as a run."""

    name: str
    mix: str
    score: float
    run_id: str
    estimator: str
    rows: int


@dataclass(frozen=True)
class Leaderboard:
    """All trials of one training, best first; the skipped ones with their reason.

    ``model_uri`` is the final model: the best trial's candidate refitted on its mix over the
    train and selection rows together.
    """

    parent_run_id: str
    metric: str
    results: list[CandidateResult]
    skipped: list[Skipped]
    model_uri: str = ""
    model_run_id: str = ""
    twin: str = ""
    """The final model's ONNX twin verdict (``Tag.ONNX``)."""

    @classmethod
    def ranked(
        cls,
        parent_run_id: str,
        metric: Metric,
        results: list[CandidateResult],
        skipped: list[Skipped],
    ) -> Leaderboard:
        """Best first in the metric's direction (``Metric.rank``)."""
        ranked = sorted(results, key=lambda r: metric.rank(r.score))
        return cls(parent_run_id, metric.name, ranked, skipped)

    @property
    def best(self) -> CandidateResult:
        """The winner."""
        return self.results[0]

    def markdown(self) -> str:
        """A table for the Dagster UI: candidate x mix, the score that chose, the run."""
        header = (
            f"| candidate | mix | estimator | {self.metric} | train rows | MLflow run |\n"
            "|---|---|---|---|---|---|"
        )
        rows = [
            f"| {r.name} | {r.mix} | {r.estimator} | {r.score:.4f} | {r.rows} | `{r.run_id}` |"
            for r in self.results
        ]
        rows += [f"| {s.name} | {s.mix} | skipped: {s.reason} | | | |" for s in self.skipped]
        return "\n".join([header, *rows])
