"""The closed loop's guardrails with real processes: recovery within the label budget, noise held.

Apart from ``test_loop.py`` so the two halves run on two workers (each loop costs about a minute).

Nothing but predictions and labels is sent; the daemon's sensor must start the retraining, the
gate must decide, and the service must pick the new champion up by itself. The model is declared
with the spec's default retraining settings: the data mix is chosen by the held-out labels, so the
loop has to recover from shifts it was not tuned for.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.loop import LABELS, MIN_FEEDBACK_ROWS, closed_loop
from mlserve_assets.cli.simulation import FEATURES, SCENARIOS, concept_rows, post_shift_model
from serving.registry import Tag, gate_outcome


# The gradual shift recovers offline over ten draws of ids (test_retraining_draws.py) with the
# assets' own functions; through the daemon, one scenario here and the rotations in test_loop.py.
@pytest.mark.parametrize("scenario", ["features"])
def test_default_settings_recover_from_a_shift_within_the_label_budget(
    scenario, tmp_path, record_property
):
    probe = concept_rows(1000, SCENARIOS[scenario].final(), seed=99)
    oracle = float(
        np.mean(post_shift_model(SCENARIOS[scenario]).predict(probe[FEATURES]) == probe["label"])
    )
    with closed_loop(tmp_path) as loop:
        before, _ = loop.accuracy(probe)
        crossed = loop.stream(scenario, LABELS)
        loop.wait(loop.settled, f"the loop did not settle after {LABELS} labels")
        loop.wait(
            lambda: loop.accuracy(probe[:5])[1] == loop.champion(),
            "the service did not follow the champion",
        )
        after, version = loop.accuracy(probe)
        record_property("accuracy_before_after_oracle", f"{before:.3f} {after:.3f} {oracle:.3f}")
        record_property("seconds_threshold_to_settled", round(time.monotonic() - crossed, 1))
        state = loop.summary()
        assert version != "1", f"no retrained version serves: {state}"
        assert loop.store.count_predictions("drift") >= LABELS
        promoted = loop.client.get_model_version("drift", version)
        assert promoted.tags[Tag.GATE] == "passed", state
        assert after >= oracle - 0.03, (scenario, before, after, oracle, state)


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
