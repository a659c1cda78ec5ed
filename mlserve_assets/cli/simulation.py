"""Drifting streams to watch the loop close: traffic and delayed ground truth for a service.

The concept is a linear boundary over four features; ``examples/data/drift_base.csv`` is the stream
before any shift (``python -m mlserve_assets.cli.simulation`` writes it again). ``mlserve simulate``
sends the stream after a shift of the chosen kind, labels each batch one round later, and reports
the served version's accuracy per round beside that of a model trained on the post-shift concept
(the best the loop could reach), so the gap the loop closes is visible.

Scenarios: ``rotation`` turns the boundary by 70 degrees at once (measured on such a stream: a
logistic regression drops from 0.93 to 0.69 accuracy); ``features`` moves the decision onto the
features that barely mattered; ``gradual`` turns the boundary by 35 degrees a round until it
reaches 70; ``inputs`` keeps the concept and moves the inputs (a new source), which the drift
check names before any label arrives, while the labels show the model still right.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from mlserve_assets.settings import PROJECT_ROOT

FEATURES = ["x1", "x2", "x3", "x4"]


def rotated(degrees: float) -> np.ndarray:
    """The base concept's weights with the boundary turned by ``degrees`` in the x1-x2 plane."""
    angle = math.radians(degrees)
    return np.array([math.cos(angle), math.sin(angle), 0.35, -0.25])


def unmoved(x: np.ndarray) -> np.ndarray:
    """The inputs as the base stream draws them."""
    return x


def moved_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs from a new source: x1 reads 1.5 higher and x2 spreads twice as wide."""
    return x * np.array([1.0, 2.0, 1.0, 1.0]) + np.array([1.5, 0.0, 0.0, 0.0])


@dataclass(frozen=True)
class Scenario:
    """A kind of shift: the concept's weights in each round, and how the inputs move."""

    name: str
    weights: Callable[[int], np.ndarray]
    inputs: Callable[[np.ndarray], np.ndarray] = unmoved

    def final(self) -> np.ndarray:
        """The concept the stream settles on."""
        return self.weights(10_000)

    def rows(self, n: int, number: int, seed: int) -> pd.DataFrame:
        """Round ``number``'s traffic: ``n`` labelled rows."""
        return concept_rows(n, self.weights(number), seed, self.inputs)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("rotation", lambda _round: rotated(70.0)),
        Scenario("features", lambda _round: np.array([0.1, -0.1, 1.0, 0.8])),
        Scenario("gradual", lambda r: rotated(min(70.0, 35.0 * (r + 1)))),
        Scenario("inputs", lambda _round: rotated(0.0), moved_inputs),
    )
}


def concept_rows(
    n: int,
    weights: np.ndarray,
    seed: int,
    inputs: Callable[[np.ndarray], np.ndarray] = unmoved,
) -> pd.DataFrame:
    """``n`` rows labelled by the side of the boundary ``weights`` draws, with a little noise."""
    rng = np.random.default_rng(seed)
    x = inputs(rng.normal(size=(n, len(FEATURES)))).round(4)
    label = (x @ weights + rng.normal(scale=0.15, size=n) > 0).astype(int)
    return pd.DataFrame(x, columns=FEATURES).assign(label=label)


def post_shift_model(scenario: Scenario, rows: int = 2000) -> LogisticRegression:
    """What retraining could reach: a model fitted on plenty of the settled stream's rows."""
    data = scenario.rows(rows, 10_000, seed=12345)
    return LogisticRegression().fit(data[FEATURES], data["label"])


@dataclass
class Report:
    """What the loop did, round by round."""

    scenario: str
    rounds: list[dict] = field(default_factory=list)

    def versions(self) -> list[str]:
        """Versions that answered, in order of first appearance."""
        return list(dict.fromkeys(r["version"] for r in self.rounds))

    def plot(self, path: Path) -> None:
        """A PNG of the served version's accuracy per round, each promotion marked."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        rounds = [r["round"] for r in self.rounds]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(rounds, [r["accuracy"] for r in self.rounds], marker="o", label="served model")
        ax.plot(
            rounds,
            [r["oracle"] for r in self.rounds],
            linestyle="--",
            color="grey",
            label="trained on the post-shift concept",
        )
        for before, after in zip(self.rounds, self.rounds[1:], strict=False):
            if after["version"] != before["version"]:
                ax.axvline(after["round"] - 0.5, color="green", alpha=0.5)
                ax.annotate(f"v{after['version']}", (after["round"] - 0.45, 0.98), color="green")
        ax.set(
            xlabel="round of traffic (labels arrive one round late)",
            ylabel="accuracy on the round's traffic",
            ylim=(min(0.5, *(r["accuracy"] - 0.05 for r in self.rounds)), 1.0),
            title=f"mlserve closed loop: {self.scenario} shift",
        )
        ax.legend(loc="center left")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def simulate(
    url: str,
    *,
    scenario: str = "rotation",
    rounds: int = 12,
    batch: int = 100,
    seed: int = 1,
    label_noise: float = 0.0,
    label_delay: int = 1,
    pause: float = 2.0,
    headers: dict[str, str] | None = None,
    say: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Send ``rounds`` batches of shifted traffic, then their labels; report each round.

    Ground truth arrives ``label_delay`` rounds late (one by default), as it would from a real
    process; labels due after the last round are never sent. ``label_noise`` flips that share of
    the labels (0.5: random labels), to watch the gate hold when feedback is bad.
    """
    shift = SCENARIOS[scenario]
    oracle = post_shift_model(shift)
    rng = np.random.default_rng(seed + 1)
    report = Report(scenario)
    waiting: list[list[tuple[str, int]]] = []  # each round's labels, oldest first
    with httpx.Client(timeout=30, headers=headers) as http:
        for number in range(rounds):
            rows = shift.rows(batch, number, seed + number)
            response = http.post(
                f"{url}/predict", json={"records": rows[FEATURES].to_dict("records")}
            )
            response.raise_for_status()
            answers = response.json()["predictions"]
            truth = rows["label"].to_numpy()
            accuracy = float(np.mean([a["prediction"] for a in answers] == truth))
            flips = rng.uniform(size=len(truth)) < label_noise
            labels = np.where(flips, 1 - truth, truth)
            sent = 0
            if len(waiting) >= label_delay:
                items = [{"prediction_id": p, "ground_truth": g} for p, g in waiting.pop(0)]
                results = http.post(f"{url}/feedback/batch", json={"feedback": items}).json()
                sent = sum(r["status"] == 201 for r in results["results"])
            waiting.append(
                [(a["prediction_id"], int(g)) for a, g in zip(answers, labels, strict=True)]
            )
            line = {
                "round": number,
                "version": answers[0]["model_version"],
                "accuracy": accuracy,
                "oracle": float(np.mean(oracle.predict(rows[FEATURES]) == truth)),
                "feedback_sent": sent,
            }
            report.rounds.append(line)
            say(
                f"round {number:2d}: served by v{line['version']}, accuracy {accuracy:.3f} "
                f"(post-shift model {line['oracle']:.3f}), labels sent for an earlier round: "
                f"{sent}"
            )
            time.sleep(pause)
    return report


if __name__ == "__main__":
    concept_rows(1000, rotated(0.0), seed=0).to_csv(
        PROJECT_ROOT / "examples/data/drift_base.csv", index=False
    )
