"""Retraining's choice and gate over many draws of the prediction ids.

The loop tests' streams (the same shifts, label budgets and seeds) retrained offline once per
draw of ids (``harness.retraining``): how often the gate held a retrained model, and how often the
model chosen fell more than 0.03 short of one fitted on plenty of the settled concept. Every held
draw is a loop that would not recover within its budget, and every short one a loop test's
accuracy check that fails, so both targets are none.

Then who sends the labels: one attacker's key's 900 flipped labels (``harness.retraining.poisoned``)
must never promote, bounded as the gate bounds an untrusted key, and the unbounded control shows
what the bound stops; the rotation labelled by two untrusted keys must still promote, and by one
untrusted key it is held (the price of the bound, reported without a target).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import cache

import numpy as np

from bench.report import Row
from harness.retraining import POISON, SHORT_OF_ORACLE, DriftRetraining, Outcome

# (scenario, labels the retraining reads): the loop tests' budgets.
CASES = (("gradual", 300), ("features", 300), ("rotation", 200))


# (what, scenario, labels, senders, source_share, target promoted: all, none or no target)
SOURCES = (
    ("one key's flipped labels, bounded", POISON, 900, ("attacker",), 0.5, "none"),
    ("one key's flipped labels, unbounded (control)", POISON, 900, ("attacker",), 1.0, ""),
    ("rotation from two untrusted keys", "rotation", 200, ("a", "b"), 0.5, "all"),
    ("rotation from one untrusted key", "rotation", 200, ("a",), 0.5, ""),
)


@cache
def _retraining(scenario: str, labels: int, share: float = 0.5) -> DriftRetraining:
    retraining = DriftRetraining(scenario, labels)
    gate = retraining.spec.gate.model_copy(update={"source_share": share})
    retraining.spec = retraining.spec.model_copy(update={"gate": gate})
    return retraining


def _draw(case: tuple[str, int, int]) -> tuple[Outcome, float]:
    scenario, labels, seed = case
    retraining = _retraining(scenario, labels)
    return retraining.draw(seed), retraining.oracle


def _draw_from(case: tuple[str, int, tuple[str, ...], float, int]) -> Outcome:
    scenario, labels, senders, share, seed = case
    return _retraining(scenario, labels, share).draw(seed, senders, frozenset())


def sources(draws: int) -> list[Row]:
    """How often each case of senders promoted, over ``draws`` draws, on both cores."""
    rows = []
    with ProcessPoolExecutor(2) as pool:
        for what, scenario, labels, senders, share, target in SOURCES:
            cases = [(scenario, labels, senders, share, s) for s in range(draws)]
            outcomes = list(pool.map(_draw_from, cases))
            promoted = sum(o.promoted for o in outcomes)
            accuracy = float(np.median([o.accuracy for o in outcomes]))
            wanted = {"all": draws, "none": 0}.get(target)
            rows.append(
                Row(
                    "selection",
                    f"{what}: promoted",
                    f"{promoted} of {draws} (median accuracy {accuracy:.3f})",
                    target={"all": f"{draws}", "none": "0"}.get(target, ""),
                    met=None if wanted is None else promoted == wanted,
                )
            )
    return rows


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
    return rows + sources(draws)
