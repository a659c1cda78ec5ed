"""The gate never promotes a worse model, whatever the metric's direction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score

from mlserve_assets.ml.gate import decide, gate_holdouts, judge, weigh
from mlserve_assets.ml.metrics import METRICS, get_metric
from mlserve_assets.ml.split import Holdout, Rows, split_dataset
from mlserve_assets.spec.models import Gate, RetrainData, Split
from serving.registry import held_streak

scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
any_score = st.floats(allow_nan=True, allow_infinity=True)


@given(
    metric=st.sampled_from(sorted(METRICS)),
    challenger=any_score,
    champion=st.none() | any_score,
    threshold=scores,
    margin=st.floats(min_value=0, max_value=1e3, allow_nan=False),
    beats_constant=st.none() | st.booleans(),
)
def test_never_promotes_a_worse_model(
    metric, challenger, champion, threshold, margin, beats_constant
):
    m = get_metric(metric)
    gate = Gate(threshold=threshold, min_improvement=margin)
    decision = decide(m, challenger, champion, gate, beats_constant=beats_constant)
    if not decision.promote:
        return
    assert math.isfinite(challenger)
    # Past the bar, or the bar unreadable (the champion misses it too) and a constant beaten.
    assert m.meets(challenger, threshold) or (
        beats_constant and champion is not None and not m.meets(champion, threshold)
    )
    if champion is not None:
        assert math.isfinite(champion)
        gain = m.improvement(challenger, champion)
        assert gain > 0
        assert gain >= margin


@given(metric=st.sampled_from(sorted(METRICS)), value=scores, margin=st.floats(0, 10))
def test_a_tie_never_moves_the_alias(metric, value, margin):
    m = get_metric(metric)
    lenient = -1e9 if m.higher_is_better else 1e9
    assert not decide(m, value, value, Gate(threshold=lenient, min_improvement=margin)).promote


@pytest.mark.parametrize(
    ("metric", "challenger", "champion", "threshold", "margin", "promote"),
    [
        ("accuracy", 0.95, 0.90, 0.8, 0.01, True),
        ("accuracy", 0.905, 0.90, 0.8, 0.01, False),
        ("accuracy", 0.95, None, 0.96, 0.0, False),
        ("accuracy", 0.97, None, 0.96, 0.0, True),
        ("rmse", 40.0, 50.0, 60.0, 5.0, True),
        ("rmse", 48.0, 50.0, 60.0, 5.0, False),
        ("rmse", 55.0, 50.0, 60.0, 0.0, False),
        ("rmse", 61.0, None, 60.0, 0.0, False),
        ("r2", 0.5, 0.4, 0.3, 0.0, True),
    ],
)
def test_examples(metric, challenger, champion, threshold, margin, promote):
    decision = decide(
        get_metric(metric), challenger, champion, Gate(threshold=threshold, min_improvement=margin)
    )
    assert decision.promote is promote
    assert decision.reason


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("champion", [None, 0.5, math.inf, -math.inf, math.nan])
def test_a_non_finite_score_on_either_side_never_promotes(metric, champion):
    m = get_metric(metric)
    best = math.inf if m.higher_is_better else -math.inf  # "better" than any threshold
    lenient = Gate(threshold=-1e9 if m.higher_is_better else 1e9)
    assert not decide(m, best, champion, lenient).promote
    assert not decide(m, math.nan, champion, lenient).promote
    assert not m.meets(best, 0.5)
    if champion is not None and not math.isfinite(champion):
        good = 0.9 if m.higher_is_better else 0.1
        assert not decide(m, good, champion, lenient).promote


@pytest.mark.parametrize(("low", "promote"), [(0.004, False), (0.006, True)])
def test_the_intervals_lower_end_must_clear_a_non_zero_margin(low, promote):
    gate = Gate(threshold=0.5, min_improvement=0.005)
    accuracy = get_metric("accuracy")
    assert decide(accuracy, 0.95, 0.90, gate, (low, 0.08)).promote is promote


def test_only_a_win_the_interval_cannot_confirm_is_held_as_unproven():
    # Unproven (worth trying in shadow): better, not surely. Worse, tied, below the threshold or
    # promoted: not.
    gate, accuracy = Gate(threshold=0.8), get_metric("accuracy")
    assert decide(accuracy, 0.95, 0.90, gate, (-0.01, 0.1)).unproven
    assert not decide(accuracy, 0.95, 0.90, gate, (0.01, 0.1)).unproven
    assert not decide(accuracy, 0.85, 0.90, gate, (-0.1, 0.01)).unproven
    assert not decide(accuracy, 0.90, 0.90, gate, (-0.05, 0.05)).unproven
    assert not decide(accuracy, 0.79, 0.70, gate, (-0.01, 0.2)).unproven


def test_negative_margin_is_refused():
    with pytest.raises(ValueError, match="min_improvement"):
        Gate(threshold=0.5, min_improvement=-0.1)


class Fixed:
    """A model whose answers are given: the gate's arithmetic, without fitting anything."""

    def __init__(self, answers: np.ndarray) -> None:
        self.answers = answers

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.answers[x["i"].to_numpy()]


def _holdout(truth: np.ndarray) -> list[Holdout]:
    rows = Rows(pd.DataFrame({"i": np.arange(len(truth))}), pd.Series(truth))
    return [Holdout("recent", rows, 1.0)]


def _answers(truth: np.ndarray, wrong: int, seed: int) -> np.ndarray:
    flip = np.random.default_rng(seed).choice(len(truth), size=wrong, replace=False)
    answers = truth.copy()
    answers[flip] = 1 - answers[flip]
    return answers


ACCURACY = get_metric("accuracy")
GATE = Gate(threshold=0.5, min_improvement=0.0, confidence=0.9)


def test_scores_per_holdout_are_the_metric_on_those_rows():
    truth = np.random.default_rng(0).integers(0, 2, 200)
    ours, theirs = _answers(truth, 20, 1), _answers(truth, 60, 2)
    evidence = weigh(ACCURACY, _holdout(truth), Fixed(ours), Fixed(theirs), 0.9)
    assert evidence.parts["recent"]["challenger"] == accuracy_score(truth, ours) == 0.9
    assert evidence.parts["recent"]["champion"] == accuracy_score(truth, theirs) == 0.7
    assert evidence.parts["recent"]["rows"] == 200


def test_the_same_answers_give_a_zero_interval_and_are_held():
    truth = np.random.default_rng(0).integers(0, 2, 200)
    same = _answers(truth, 30, 1)
    evidence = weigh(ACCURACY, _holdout(truth), Fixed(same), Fixed(same.copy()), 0.9)
    assert evidence.interval == (0.0, 0.0)
    decision = decide(ACCURACY, evidence.challenger, evidence.champion, GATE, evidence.interval)
    assert not decision.promote


def test_a_clear_win_clears_the_interval_and_a_win_within_noise_does_not():
    truth = np.random.default_rng(0).integers(0, 2, 200)
    champion = Fixed(_answers(truth, 60, 2))  # 0.70
    clear = weigh(ACCURACY, _holdout(truth), Fixed(_answers(truth, 20, 1)), champion, 0.9)
    assert clear.interval[0] > 0.1
    assert decide(ACCURACY, clear.challenger, clear.champion, GATE, clear.interval).promote
    # 2 points better on 40 rows: the point estimate wins, the interval straddles zero.
    few = truth[:40]
    ours = _answers(few, 10, 3)
    theirs = ours.copy()
    theirs[np.flatnonzero(ours == few)[:1]] ^= 1  # the champion gets one more row wrong
    noisy = weigh(ACCURACY, _holdout(few), Fixed(ours), Fixed(theirs), 0.9)
    assert noisy.challenger > noisy.champion
    assert noisy.interval[0] <= 0 < noisy.interval[1]
    decision = decide(ACCURACY, noisy.challenger, noisy.champion, GATE, noisy.interval)
    assert not decision.promote
    assert "interval" in decision.reason


def _labelled(senders: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """100 base rows, and as many labels as ``senders``, each sent by its key, received at i+1."""
    frame = pd.DataFrame({"i": np.arange(100), "y": np.arange(100) % 2})
    n = len(senders)
    feedback = pd.DataFrame({"i": np.arange(n), "y": np.arange(n) % 2}).assign(
        prediction_id=[f"{k:032x}" for k in range(n)], received_at=np.arange(1.0, n + 1)
    )
    return frame, feedback.assign(key_id=senders)


def _every_label_judges(
    frame: pd.DataFrame, features: list[str], feedback: pd.DataFrame, split: Split | None = None
):
    """The base rows split, and every label a gate label (the gate's share at its top)."""
    policy = RetrainData(holdout_fraction=0.999999)
    split = split or Split(stratify=False)
    return split_dataset(frame, features, "y", split, feedback, policy, role_secret=b"k")


def test_gate_rows_are_the_recent_labels_with_the_base_test_rows_at_base_weight():
    frame, feedback = _labelled(["owner"] * 100)
    data = split_dataset(frame, ["i"], "y", Split(stratify=False), feedback, role_secret=b"k")
    holdouts = gate_holdouts(data, Gate(threshold=0.5, base_weight=0.3), trusted={"owner"})
    assert [(h.name, h.weight, len(h.rows)) for h in holdouts] == [
        ("recent", 0.7, len(data.feedback_gate)),
        ("base", 0.3, len(data.base_test)),
    ]
    alone = gate_holdouts(data, Gate(threshold=0.5, base_weight=0.0), trusted={"owner"})
    assert [h.name for h in alone] == ["recent"]
    without = split_dataset(frame, ["i"], "y", Split(stratify=False))
    assert [h.name for h in gate_holdouts(without, Gate(threshold=0.5))] == ["base"]


@given(
    counts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=5),
    share=st.floats(min_value=0.05, max_value=1.0),
    base_weight=st.floats(min_value=0.0, max_value=0.9),
    trusted=st.sets(st.integers(min_value=0, max_value=4), max_size=2),
)
def test_no_untrusted_key_carries_more_than_its_share_of_the_recent_labels(
    counts, share, base_weight, trusted
):
    senders = [f"key{k}" for k, n in enumerate(counts) for _ in range(n)]
    frame, feedback = _labelled(senders)
    # Every label judges: each key's gate rows are exactly the labels it sent.
    data = _every_label_judges(frame, ["i"], feedback)
    trusted_keys = {f"key{k}" for k in trusted}
    gate = Gate(threshold=0.5, base_weight=base_weight, source_share=share)
    holdouts = {h.name: h for h in gate_holdouts(data, gate, trusted=trusted_keys)}
    total = len(senders)
    # Independently: a key's weight is its share of the labels, an untrusted one's at most share.
    carried = {
        key: (1 - base_weight) * (n / total if key in trusted_keys else min(n / total, share))
        for key, n in ((f"key{k}", n) for k, n in enumerate(counts))
    }
    assert len(data.feedback_gate) == total
    weights = dict.fromkeys(carried, 0.0)
    sender_of = dict(enumerate(senders))
    for name, holdout in holdouts.items():
        if name != "base":
            sent = holdout.rows.x["i"].map(sender_of)
            for key, rows in sent.value_counts().items():
                weights[key] += holdout.weight * rows / len(holdout.rows)
    assert weights == pytest.approx(carried)
    base = holdouts["base"].weight if "base" in holdouts else 0.0
    assert base == pytest.approx(1 - sum(carried.values()))


def test_one_untrusted_keys_labels_weigh_at_most_half_the_recent_evidence_the_rest_base():
    frame, feedback = _labelled(["mallory"] * 100)
    data = split_dataset(frame, ["i"], "y", Split(stratify=False), feedback, role_secret=b"k")
    holdouts = gate_holdouts(data, Gate(threshold=0.5))  # defaults: base 0.1, share 0.5
    assert [(h.name, round(h.weight, 9)) for h in holdouts] == [
        ("recent_key_mallory", 0.45),
        ("base", 0.55),
    ]
    spread = gate_holdouts(data, Gate(threshold=0.5, source_share=1.0))
    assert [(h.name, round(h.weight, 9)) for h in spread] == [("recent", 0.9), ("base", 0.1)]


def test_the_gate_judges_on_the_labels_received_since_the_champion_was_trained():
    frame = pd.DataFrame({"i": np.arange(100), "y": np.arange(100) % 2})
    feedback = frame.assign(
        prediction_id=[f"{n:032x}" for n in range(100)], received_at=np.arange(100.0)
    )
    data = split_dataset(frame, ["i"], "y", Split(stratify=False), feedback, role_secret=b"k")
    model = Fixed(np.zeros(100, dtype=int))
    gate = Gate(threshold=0.0, source_share=1.0)
    # Labels are received at their "i": gate labels after 60 are those with i > 60.
    newer = [i for i in data.feedback_gate.x["i"] if i > 60]
    _, evidence = judge(ACCURACY, gate, data, model, model, served_since=60.0)
    assert evidence.parts["recent"]["rows"] == len(newer) > 0
    _, everything = judge(ACCURACY, gate, data, model, model)
    assert everything.parts["recent"]["rows"] == len(data.feedback_gate)


@pytest.mark.parametrize(("metric", "expected"), [("accuracy", "cab"), ("rmse", "bac")])
def test_the_leaderboard_ranks_best_first_in_the_metrics_direction_a_non_finite_score_last(
    metric, expected
):
    from mlserve_assets.ml.leaderboard import CandidateResult, Leaderboard

    scores = {"a": 0.2, "b": 0.1, "c": 0.9, "d": math.nan, "e": math.inf}
    results = [CandidateResult(n, "base", v, "", "", 1) for n, v in scores.items()]
    board = Leaderboard.ranked("", get_metric(metric), results, [])
    assert "".join(r.name for r in board.results)[:3] == expected
    assert {r.name for r in board.results[3:]} == {"d", "e"}


@given(st.lists(st.sampled_from(["passed", "held", "pending"]), max_size=12))
def test_the_held_streak_counts_the_newest_decided_versions_held_in_a_row(outcomes):
    # Independently: walk from the newest, skip undecided, stop at the first that passed.
    expected = 0
    for outcome in outcomes:
        if outcome == "passed":
            break
        expected += outcome == "held"
    assert held_streak(outcomes) == expected


def test_a_pass_ends_the_streak_and_undecided_versions_do_not():
    assert held_streak(["pending", "held", "held", "passed", "held"]) == 2
    assert held_streak([]) == 0


def test_replay_last_holds_a_challenger_that_loses_on_the_newest_labelled_requests():
    frame = pd.DataFrame({"i": np.arange(100), "y": np.arange(100) % 2})
    feedback = pd.DataFrame({"i": np.arange(100, 400), "y": np.arange(300) % 2}).assign(
        prediction_id=[f"{n:032x}" for n in range(300)], received_at=np.arange(300.0)
    )
    data = split_dataset(frame, ["i"], "y", Split(stratify=False), feedback, role_secret=b"k")
    truth = np.concatenate([frame["y"], feedback["y"]])
    # The challenger is right everywhere but on the 40 newest labels; the champion right on 70%.
    challenger, champion = truth.copy(), _answers(truth, 120, 1)
    challenger[-40:] = 1 - challenger[-40:]
    gate_rows = sorted(data.feedback_gate.x["i"])
    newest = gate_rows[-10:]  # received_at = i - 100: the newest gate labels are the largest i
    expected = (
        accuracy_score(truth[newest], challenger[newest]),
        accuracy_score(truth[newest], champion[newest]),
    )
    assert expected[0] < expected[1], "the newest gate labels must fall in the challenger's bad 40"
    gate = Gate(threshold=0.5, source_share=1.0)
    plain, _ = judge(ACCURACY, gate, data, Fixed(challenger), Fixed(champion))
    assert plain.promote, plain.reason
    replaying = gate.model_copy(update={"replay_last": 10})
    held, evidence = judge(ACCURACY, replaying, data, Fixed(challenger), Fixed(champion))
    assert not held.promote and not held.unproven
    assert "newest 10 labelled requests" in held.reason
    part = evidence.parts["replay"]
    assert (part["rows"], part["challenger"], part["champion"]) == (10, *expected)
    # Not worse on the newest labels: the rule lets the gate's own verdict stand.
    kept, _ = judge(ACCURACY, replaying, data, Fixed(truth), Fixed(champion))
    assert kept.promote, kept.reason


def test_replay_last_has_nothing_to_replay_before_any_request_is_labelled():
    frame = pd.DataFrame({"i": np.arange(100), "y": np.arange(100) % 2})
    data = split_dataset(frame, ["i"], "y", Split(stratify=False))
    truth = frame["y"].to_numpy()
    gate = Gate(threshold=0.5, replay_last=10)
    decision, evidence = judge(ACCURACY, gate, data, Fixed(truth), Fixed(_answers(truth, 30, 1)))
    assert decision.promote and "replay" not in evidence.parts


def _winter(rng: np.random.Generator, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A year of days as the base rows, a narrow cold spell as the labels that judge."""
    day = rng.uniform(0, 365, rows)
    base = pd.DataFrame({"t": 12 - 8 * np.cos(2 * np.pi * day / 365)})
    base["y"] = base["t"] + 5 + rng.normal(0, 1, rows)
    cold = pd.DataFrame({"t": rng.normal(2, 1, 60)})
    cold["y"] = cold["t"] + 5 + rng.normal(0, 1, 60)
    return base, cold.assign(
        prediction_id=[f"p{i}" for i in range(60)],
        received_at=np.arange(60, dtype=float),
        key_id="owner",
    )


class _Answers:
    """A model that answers ``t + offset``: the offset is how far off it is, everywhere."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return x["t"].to_numpy() + 5 + self.offset


def test_where_the_champion_misses_the_bar_too_beating_a_constant_answer_reads_it():
    base, cold = _winter(np.random.default_rng(0), 400)
    data = _every_label_judges(base, ["t"], cold)
    gate, r2 = Gate(threshold=0.01, base_weight=0.0), get_metric("r2")
    # A degree or two off on a cold spell whose own spread is a degree: r2 below zero for both.
    decision, evidence = judge(r2, gate, data, _Answers(1.2), _Answers(2.0))
    assert evidence.challenger < 0.01 and evidence.champion < 0.01
    assert evidence.parts["constant"]["score"] < evidence.challenger  # the mean: 10 degrees off
    assert decision.promote, decision.reason


def test_a_model_no_better_than_a_constant_answer_stays_below_the_bar():
    rng = np.random.default_rng(1)
    base = pd.DataFrame({"t": rng.normal(0, 1, 400), "y": rng.choice(["a", "b"], 400)})
    labels = pd.DataFrame({"t": rng.normal(0, 1, 300), "y": rng.choice(["a", "b"], 300)})
    labels = labels.assign(
        prediction_id=[f"p{i}" for i in range(300)],
        received_at=np.arange(300, dtype=float),
        key_id="owner",
    )
    data = _every_label_judges(base, ["t"], labels, Split())

    class Coin:
        def __init__(self, seed: int) -> None:
            self.rng = np.random.default_rng(seed)

        def predict(self, x: pd.DataFrame) -> np.ndarray:
            return self.rng.choice(["a", "b"], len(x))

    # Random labels: both models and the commonest class near 50%, under a bar of 60%.
    promoted = [
        judge(ACCURACY, Gate(threshold=0.6), data, Coin(s), Coin(100 + s))[0].promote
        for s in range(20)
    ]
    assert not any(promoted)
