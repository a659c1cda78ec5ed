"""The retraining rules as a pure function: a test per rule, and properties over any facts.

Expected outcomes are read off the rules' definitions (a count against a threshold, a time
against a window), never off the function's own output.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import example, given
from hypothesis import strategies as st

from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.ml.retrain import DAY_SECONDS, RetrainFacts, should_retrain
from mlserve_assets.spec.models import Retrain

NOW = 1_800_000_000.0
ACCURACY = get_metric("accuracy")
RMSE = get_metric("rmse")
DEFAULT = Retrain()  # 150 labels (30 after 60 s quiet), cooldown 30 s, 24 runs a day


def facts(**changes: object) -> RetrainFacts:
    """A served champion registered an hour ago, no runs; any labels are arriving now."""
    base = RetrainFacts(
        model_name="m",
        now=NOW,
        champion_version="3",
        champion_created=NOW - 3600,
        first_label=NOW,
        latest_label=NOW,
    )
    return replace(base, **changes)


def test_nothing_serves_nothing_to_improve():
    decision = should_retrain(facts(champion_version=None, new_labels=10_000), DEFAULT, ACCURACY)
    assert not decision.request
    assert "has no champion yet" in decision.reason


def test_the_row_count_fires_at_its_threshold_not_below():
    below = should_retrain(facts(new_labels=149), DEFAULT, ACCURACY)
    assert not below.request
    assert "149 labelled rows since the last training (need 150, or 30 once quiet" in below.reason
    at = should_retrain(facts(new_labels=150), DEFAULT, ACCURACY)
    assert at.request
    assert "150 new labelled rows >= min_feedback_rows 150" in at.tags["mlserve/trigger"]
    assert at.tags["mlserve/new_labels"] == "150"


def test_labels_that_stop_short_of_the_threshold_train_once_quiet():
    # 92 labels in nine seconds, then nothing: quiet from 60 s after the last (the default).
    stopped = facts(new_labels=92, first_label=NOW - 70, latest_label=NOW - 61)
    fired = should_retrain(stopped, DEFAULT, ACCURACY)
    assert fired.request
    assert fired.reason == "92 new labelled rows (>= min_quiet_rows 30), none for 61 s"
    assert not should_retrain(replace(stopped, latest_label=NOW - 59), DEFAULT, ACCURACY).request
    assert not should_retrain(replace(stopped, new_labels=29), DEFAULT, ACCURACY).request
    assert should_retrain(
        replace(stopped, new_labels=29), Retrain(min_quiet_rows=29), ACCURACY
    ).request
    # Off, the count alone decides, however long the labels have waited.
    off = Retrain(quiet_seconds=None)
    waited = replace(stopped, new_labels=149, latest_label=NOW - DAY_SECONDS)
    assert not should_retrain(waited, off, ACCURACY).request


def test_a_slow_stream_is_not_taken_for_one_that_ended():
    # 41 labels over 2000 s: a label every 50 s, so quiet means 500 s without one, not 60.
    slow = facts(new_labels=41, first_label=NOW - 2120, latest_label=NOW - 120)
    assert not should_retrain(slow, DEFAULT, ACCURACY).request
    assert not should_retrain(replace(slow, now=NOW + 379), DEFAULT, ACCURACY).request
    assert should_retrain(replace(slow, now=NOW + 381), DEFAULT, ACCURACY).request


def test_no_request_while_a_run_is_in_flight():
    decision = should_retrain(facts(new_labels=500, in_flight_run="abc"), DEFAULT, ACCURACY)
    assert not decision.request
    assert decision.reason == "run abc of m is in flight"


def test_the_live_rule_fires_past_the_floor_in_the_metric_s_direction():
    rules = Retrain(min_live_metric=0.85)
    assert should_retrain(facts(new_labels=30, live=0.84), rules, ACCURACY).request
    assert not should_retrain(facts(new_labels=30, live=0.86), rules, ACCURACY).request
    # Lower is better for an error: 12 is past a ceiling of 10, 8 is not.
    ceiling = Retrain(min_live_metric=10.0)
    fired = should_retrain(facts(new_labels=30, live=12.0), ceiling, RMSE)
    assert "live rmse of v3 is 12.0000, past min_live_metric 10.0" in fired.reason
    assert not should_retrain(facts(new_labels=30, live=8.0), ceiling, RMSE).request


def test_the_live_rule_needs_new_labels_and_a_reading():
    rules = Retrain(min_live_metric=0.85)
    assert not should_retrain(facts(new_labels=0, live=0.1), rules, ACCURACY).request
    assert not should_retrain(facts(new_labels=30, live=None), rules, ACCURACY).request


def test_after_a_held_gate_the_live_rule_waits_until_the_metric_is_clearly_worse():
    rules = Retrain(min_live_metric=0.85, backoff_live_drop=0.05)
    held = facts(new_labels=5, held_version="4", live_at_hold=0.5)
    same = should_retrain(replace(held, live=0.5), rules, ACCURACY)
    assert not same.request
    assert "the gate held v4, so back off" in same.reason
    assert not should_retrain(replace(held, live=0.46), rules, ACCURACY).request  # 0.04 worse
    assert should_retrain(replace(held, live=0.44), rules, ACCURACY).request  # 0.06 worse


def test_after_a_held_gate_without_a_recorded_live_metric_the_live_rule_still_fires():
    rules = Retrain(min_live_metric=0.85)
    held = facts(new_labels=5, held_version="4", live=0.5, live_at_hold=None)
    assert should_retrain(held, rules, ACCURACY).request


def test_the_age_rule_fires_only_with_new_labels_and_not_after_a_held_gate():
    rules = Retrain(max_age_hours=0.5)  # the champion is an hour old
    assert not should_retrain(facts(new_labels=0), rules, ACCURACY).request
    fired = should_retrain(facts(new_labels=1), rules, ACCURACY)
    assert "champion v3 is 1.0 h old" in fired.reason
    assert not should_retrain(facts(new_labels=1, held_version="4"), rules, ACCURACY).request
    assert not should_retrain(facts(new_labels=1), Retrain(max_age_hours=2), ACCURACY).request


def test_the_cooldown_counts_from_the_last_run_and_from_requests_not_yet_shown():
    rules = Retrain(cooldown_seconds=60)
    ran = should_retrain(facts(new_labels=150, last_run_created=NOW - 59), rules, ACCURACY)
    assert not ran.request
    assert "cooldown: the last run was requested 59 s ago" in ran.reason
    assert "would retrain: 150 new labelled rows" in ran.reason
    asked = should_retrain(facts(new_labels=150, requested=(NOW - 10,)), rules, ACCURACY)
    assert not asked.request
    assert should_retrain(facts(new_labels=150, last_run_created=NOW - 61), rules, ACCURACY).request


def test_the_daily_cap_counts_runs_and_requests_whichever_is_more():
    rules = Retrain(cooldown_seconds=0, max_runs_per_day=3)
    by_runs = should_retrain(facts(new_labels=150, runs_last_day=3), rules, ACCURACY)
    assert not by_runs.request
    assert "cap: 3 runs in the last 24 h (max_runs_per_day 3)" in by_runs.reason
    by_requests = facts(new_labels=150, requested=(NOW - 300, NOW - 200, NOW - 100))
    assert not should_retrain(by_requests, rules, ACCURACY).request
    # A request older than a day no longer counts, and leaves the cursor.
    aged = facts(new_labels=150, requested=(NOW - DAY_SECONDS - 1, NOW - 200, NOW - 100))
    decision = should_retrain(aged, rules, ACCURACY)
    assert decision.request
    assert decision.requested == (NOW - 200, NOW - 100, NOW)


def test_the_run_key_names_the_newest_label_and_the_last_run():
    state = facts(new_labels=150, latest_label=123.5, last_run_id="r1", last_run_created=0.0)
    decision = should_retrain(state, DEFAULT, ACCURACY)
    assert decision.run_key == "m-labels-until-123.5-after-r1"
    # After a failed run a new run id gives a new key: Dagster would skip a repeated one.
    again = should_retrain(replace(state, last_run_id="r2"), DEFAULT, ACCURACY)
    assert again.run_key != decision.run_key


# Any facts at all: the guardrails hold whatever the rules and the state.
rules_strategy = st.builds(
    Retrain,
    min_feedback_rows=st.integers(1, 500),
    min_live_metric=st.none() | st.floats(0, 1),
    max_age_hours=st.none() | st.floats(0.01, 100),
    quiet_seconds=st.none() | st.floats(1, 7200),
    min_quiet_rows=st.integers(1, 500),
    cooldown_seconds=st.floats(0, 7200),
    max_runs_per_day=st.integers(1, 50),
    backoff_live_drop=st.floats(0, 0.5),
)
facts_strategy = st.builds(
    RetrainFacts,
    model_name=st.just("m"),
    now=st.just(NOW),
    champion_version=st.none() | st.sampled_from(["1", "7"]),
    champion_created=st.floats(NOW - 10 * DAY_SECONDS, NOW),
    in_flight_run=st.none() | st.just("run-1"),
    last_run_id=st.none() | st.sampled_from(["run-0", "run-2"]),
    last_run_created=st.none() | st.floats(NOW - 2 * DAY_SECONDS, NOW),
    runs_last_day=st.integers(0, 60),
    requested=st.lists(st.floats(NOW - 2 * DAY_SECONDS, NOW), max_size=60).map(tuple),
    new_labels=st.integers(0, 1000),
    first_label=st.floats(0, NOW),
    latest_label=st.floats(0, NOW),
    held_version=st.none() | st.just("8"),
    live=st.none() | st.floats(0, 1),
    live_at_hold=st.none() | st.floats(0, 1),
)


@given(facts_strategy, rules_strategy)
def test_never_a_request_while_a_run_is_in_flight_or_nothing_serves(state, rules):
    decision = should_retrain(state, rules, ACCURACY)
    if state.in_flight_run is not None or state.champion_version is None:
        assert not decision.request


@given(facts_strategy, rules_strategy)
# The boundary itself, which random facts rarely reach with every other rule passing: a day that
# holds exactly the cap (by runs, then by requests) with labels enough and no cooldown.
@example(
    RetrainFacts("m", NOW, "1", NOW - DAY_SECONDS, runs_last_day=3, new_labels=500),
    Retrain(cooldown_seconds=0, max_runs_per_day=3),
)
@example(
    RetrainFacts("m", NOW, "1", NOW - DAY_SECONDS, requested=(NOW - 9, NOW - 8), new_labels=500),
    Retrain(cooldown_seconds=0, max_runs_per_day=2),
)
def test_never_more_than_the_daily_cap(state, rules):
    decision = should_retrain(state, rules, ACCURACY)
    in_last_day = [t for t in state.requested if t > state.now - DAY_SECONDS]
    if decision.request:
        assert max(len(in_last_day), state.runs_last_day) < rules.max_runs_per_day
        assert len(decision.requested) <= rules.max_runs_per_day
    # The cursor keeps the last day's requests, and only those, plus this one.
    assert list(decision.requested[: len(in_last_day)]) == in_last_day
    assert len(decision.requested) == len(in_last_day) + decision.request


@given(facts_strategy, rules_strategy)
def test_never_inside_the_cooldown(state, rules):
    decision = should_retrain(state, rules, ACCURACY)
    last = [t for t in state.requested if t > state.now - DAY_SECONDS]
    if state.last_run_created is not None:
        last.append(state.last_run_created)
    if decision.request and last:
        assert state.now - max(last) >= rules.cooldown_seconds


@given(facts_strategy, rules_strategy)
def test_the_same_facts_give_the_same_decision_and_run_key(state, rules):
    assert should_retrain(state, rules, ACCURACY) == should_retrain(state, rules, ACCURACY)


@given(facts_strategy, rules_strategy)
def test_without_new_labels_nothing_retrains(state, rules):
    if state.new_labels == 0:
        assert not should_retrain(state, rules, ACCURACY).request
