"""The loop: labels crossing the threshold -> the first answer from the retrained version.

Each round is the rotation the loop tests run, with the same harness: the drift model trained and
served, the real Dagster daemon ticking its sensor, shifted traffic labelled one round late. The
clock starts when the labels sent reach ``min_feedback_rows`` and stops when the service first
answers from a new version, so it holds the sensor's tick, the queue, the run's start, the
retraining, the gate, the promotion and the service's next registry poll. Two tables: the drift
example's (1,000 rows, its two candidates), and ``--base-rows`` of the same concept (10,000 by
default) with the three families the retraining section fits (scaled logistic regression,
``mlserve init``'s 200-tree forest, gradient boosting). ``--db sqlite`` runs the embedded default;
``postgres`` the production services (PostgreSQL for Dagster, MLflow and the log, an MLflow
server, S3).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.report import Bench, Row, median
from bench.retraining import CANDIDATES
from harness.loop import BATCH, closed_loop, drift_model
from mlserve_assets.cli.simulation import SCENARIOS, concept_rows, rotated

TARGET_SECONDS = 30


def measure(bench: Bench, base_rows: int) -> list[Row]:
    """Median over ``bench.rounds`` fresh loops, for each table."""
    backend = "embedded" if bench.db == "sqlite" else "production"
    folder = Path(tempfile.mkdtemp(prefix="loop-table-", dir=bench.work))
    return [
        _row(bench, backend, table, model) for table, model in tables(folder, base_rows).items()
    ]


def tables(folder: Path, base_rows: int) -> dict[str, dict | None]:
    """Each table's model declaration (None: the drift example's own), its rows in ``folder``."""
    large = folder / "base.csv"
    concept_rows(base_rows, rotated(0.0), seed=0).to_csv(large, index=False)
    model = drift_model()
    return {
        "drift example": None,
        f"{base_rows:,} rows, three families": model
        | {"source": model["source"] | {"path": str(large)}, "candidates": CANDIDATES},
    }


def _row(bench: Bench, backend: str, table: str, model: dict | None) -> Row:
    probe = concept_rows(5, SCENARIOS["rotation"].final(), seed=99)
    seconds = []
    for _ in range(bench.rounds):
        folder = Path(tempfile.mkdtemp(prefix="loop-", dir=bench.work))
        with closed_loop(folder, backend, model=model) as loop:
            crossed = loop.stream("rotation", 4 * BATCH)
            seconds.append(loop.first_new_answer(probe, crossed)[1])
    took = median(seconds)
    return Row(
        "loop",
        f"threshold -> first answer of the new version ({backend}, {table})",
        f"{took:.1f} s ({min(seconds):.1f}-{max(seconds):.1f})",
        target=f"< {TARGET_SECONDS} s",
        met=took < TARGET_SECONDS,
    )
