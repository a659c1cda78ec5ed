"""Retraining's choice and gate over many draws of the prediction ids.

The loop tests' streams (the same shifts, label budgets and seeds) retrained offline once per
draw of ids (``harness.retraining``): how often the gate held a retrained model, and how often the
model chosen fell more than 0.03 short of one fitted on plenty of the settled concept. Every held
draw is a loop that would not recover within its budget, and every short one a loop test's
accuracy check that fails, so both targets are none.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import cache

import numpy as np

from bench.report import Row
from harness.retraining import SHORT_OF_ORACLE, DriftRetraining, Outcome

# (scenario, labels the retraining reads): the loop tests' budgets.
CASES = (("gradual", 300), ("features", 300), ("rotation", 200))


@cache
def _retraining(scenario: str, labels: int) -> DriftRetraining:
    return DriftRetraining(scenario, labels)


def _draw(case: tuple[str, int, int]) -> tuple[Outcome, float]:
    scenario, labels, seed = case
    retraining = _retraining(scenario, labels)
    return retraining.draw(seed), retraining.oracle


def measure(draws: int) -> list[Row]:
    """Each case's held and short counts over ``draws`` draws, on both cores."""
    rows = []
    with ProcessPoolExecutor(2) as pool:
        for scenario, labels in CASES:
            outcomes = list(pool.map(_draw, [(scenario, labels, s) for s in range(draws)]))
            held = sum(not o.promoted for o, _ in outcomes)
            short = sum(o.accuracy < oracle - SHORT_OF_ORACLE for o, oracle in outcomes)
            accuracy = float(np.median([o.accuracy for o, _ in outcomes]))
            case = f"{scenario}, {labels} labels"
            rows += [
                Row(
                    "selection",
                    f"{case}: gate held",
                    f"{held} of {draws}",
                    target="0",
                    met=not held,
                ),
                Row(
                    "selection",
                    f"{case}: chosen > {SHORT_OF_ORACLE} below the oracle ({outcomes[0][1]:.3f})",
                    f"{short} of {draws} (median accuracy {accuracy:.3f})",
                    target="0",
                    met=not short,
                ),
            ]
    return rows
