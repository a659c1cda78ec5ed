"""A drifting stream to watch the loop close: traffic and delayed ground truth for a service.

The concept is a linear boundary over four features; after the shift it is rotated by about 70
degrees (measured on such a stream: a logistic regression drops from 0.93 to 0.69 accuracy).
``examples/data/drift_base.csv`` is the stream before the shift (``python -m
mlserve_assets.simulation`` writes it again), and ``mlserve simulate`` sends the stream after it, so
the champion trained on the old concept loses accuracy until the sensor retrains it on the labels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from mlserve_assets.settings import PROJECT_ROOT

FEATURES = ["x1", "x2", "x3", "x4"]
SHIFT_DEGREES = 70.0


def concept_rows(n: int, degrees: float, seed: int) -> pd.DataFrame:
    """``n`` rows labelled by the side of a boundary rotated by ``degrees`` in the x1-x2 plane."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).round(4)
    angle = math.radians(degrees)
    weights = np.array([math.cos(angle), math.sin(angle), 0.35, -0.25])
    label = (x @ weights + rng.normal(scale=0.15, size=n) > 0).astype(int)
    return pd.DataFrame(x, columns=FEATURES).assign(label=label)


@dataclass
class Report:
    """What the loop did, round by round."""

    rounds: list[dict] = field(default_factory=list)

    def versions(self) -> list[str]:
        """Versions that answered, in order of first appearance."""
        return list(dict.fromkeys(r["version"] for r in self.rounds))


def simulate(
    url: str,
    *,
    rounds: int = 12,
    batch: int = 100,
    seed: int = 1,
    label_noise: float = 0.0,
    pause: float = 2.0,
    say: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Send ``rounds`` batches of shifted traffic, then their labels; report each round.

    Ground truth arrives one round late, as it would from a real process. ``label_noise`` flips
    that share of the labels, to watch the gate hold when feedback is bad.
    """
    rng = np.random.default_rng(seed + 1)
    report = Report()
    pending: list[tuple[str, int]] = []
    with httpx.Client(timeout=30) as http:
        for number in range(rounds):
            rows = concept_rows(batch, SHIFT_DEGREES, seed + number)
            records = rows[FEATURES].to_dict("records")
            response = http.post(f"{url}/predict", json={"records": records})
            response.raise_for_status()
            answers = response.json()["predictions"]
            truth = rows["label"].to_numpy()
            accuracy = float(np.mean([a["prediction"] for a in answers] == truth))
            flips = rng.uniform(size=len(truth)) < label_noise
            labels = np.where(flips, 1 - truth, truth)
            sent = 0
            if pending:
                items = [{"prediction_id": p, "ground_truth": g} for p, g in pending]
                results = http.post(f"{url}/feedback/batch", json={"feedback": items}).json()
                sent = sum(r["status"] == 201 for r in results["results"])
            pending = [(a["prediction_id"], int(g)) for a, g in zip(answers, labels, strict=True)]
            line = {
                "round": number,
                "version": answers[0]["model_version"],
                "accuracy": accuracy,
                "feedback_sent": sent,
            }
            report.rounds.append(line)
            say(
                f"round {number:2d}: served by v{line['version']}, accuracy on shifted traffic "
                f"{accuracy:.3f}, labels sent for the previous round: {sent}"
            )
            time.sleep(pause)
    return report


if __name__ == "__main__":
    concept_rows(1000, 0.0, seed=0).to_csv(
        PROJECT_ROOT / "examples/data/drift_base.csv", index=False
    )
