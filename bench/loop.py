"""The loop: labels crossing the threshold -> the first answer from the retrained version.

Each round is the rotation the loop tests run, with the same harness: the drift model trained and
served, the real Dagster daemon ticking its sensor, shifted traffic labelled one round late. The
clock starts when the labels sent reach ``min_feedback_rows`` and stops when the service first
answers from a new version, so it holds the sensor's tick, the run (retraining, gate, promotion)
and the service's next registry poll. ``--db sqlite`` runs the embedded default; ``postgres`` the
production services (PostgreSQL for Dagster, MLflow and the log, an MLflow server, S3).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.report import Bench, Row, median
from harness.loop import BATCH, closed_loop
from mlserve_assets.cli.simulation import SCENARIOS, concept_rows

TARGET_SECONDS = 30


def measure(bench: Bench) -> list[Row]:
    """Median over ``bench.rounds`` fresh loops."""
    backend = "embedded" if bench.db == "sqlite" else "production"
    probe = concept_rows(5, SCENARIOS["rotation"].final(), seed=99)
    seconds = []
    for _ in range(bench.rounds):
        folder = Path(tempfile.mkdtemp(prefix="loop-", dir=bench.work))
        with closed_loop(folder, backend) as loop:
            crossed = loop.stream("rotation", 4 * BATCH)
            seconds.append(loop.first_new_answer(probe, crossed)[1])
    took = median(seconds)
    return [
        Row(
            "loop",
            f"threshold -> first answer of the new version ({backend})",
            f"{took:.1f} s ({min(seconds):.1f}-{max(seconds):.1f})",
            target=f"< {TARGET_SECONDS} s",
            met=took < TARGET_SECONDS,
        )
    ]
