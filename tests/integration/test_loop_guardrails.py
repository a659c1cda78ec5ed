"""The closed loop's guardrails with real processes: labels that are noise are held, runs capped.

Apart from ``test_loop.py`` so the two run on two workers (each loop costs about a minute).
Recovery with default settings is tested through the daemon on a real table's seasons
(``test_real_drift.py``) and on the synthetic streams offline, ten draws of ids each
(``test_retraining_draws.py``).

Nothing but predictions and labels is sent; the daemon's sensor must start the retraining, the
gate must decide, and the service must pick the new champion up by itself.
"""

from __future__ import annotations

import time

from harness.loop import MIN_FEEDBACK_ROWS, closed_loop
from mlserve_assets.cli.simulation import SCENARIOS, concept_rows
from serving.registry import gate_outcome


def test_random_labels_are_held_and_runs_stay_within_the_cap(tmp_path):
    # One run a day: the cap's arithmetic is property-tested (tests/unit/test_retrain_rules.py);
    # here the real daemon must keep to it with the labels to retrain again.
    with closed_loop(tmp_path, max_runs_per_day=1, cooldown_seconds=5) as loop:

        def held() -> int:
            return sum(gate_outcome(v) == "held" for v in loop.versions())

        # A run reads every label there is when it runs: send a batch, wait for its decision.
        loop.stream("rotation", 2 * MIN_FEEDBACK_ROWS, noise=0.5, seed=100)
        loop.wait(lambda: held() >= 1, "the retraining did not finish")
        loop.stream("rotation", 2 * MIN_FEEDBACK_ROWS, noise=0.5, seed=300)
        time.sleep(15)  # three sensor ticks with 300 unused labels: the cap of 1 must hold
        assert [gate_outcome(v) for v in loop.versions()] == ["passed", "held"]
        assert loop.champion() == "1"
        answers = loop.predict(concept_rows(20, SCENARIOS["rotation"].final(), 7))
        assert {a["model_version"] for a in answers} == {"1"}
