"""Baking's verdict and the label-free estimate: pure arithmetic on generated streams."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from mlserve_assets.ml.bake import judge, looks, milestone
from mlserve_assets.ml.estimate import estimated_score
from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.spec.watching import Bake

ACCURACY = get_metric("accuracy")


def _answers(rng: np.random.Generator, truth: np.ndarray, right: float) -> np.ndarray:
    """Answers that are right with probability ``right``, independently per request."""
    return np.where(rng.uniform(size=len(truth)) < right, truth, 1 - truth)


def test_milestones_double_from_min_labels_and_the_end_judges_every_label():
    assert [milestone(n, 30, final=False) for n in (0, 29, 30, 59, 60, 119, 120, 1999)] == [
        0, 0, 30, 30, 60, 60, 120, 1920,
    ]  # fmt: skip
    assert milestone(1999, 30, final=True) == 1999
    assert milestone(29, 30, final=True) == 0
    # 30, 60, ..., 1920 (7 milestones) and the end.
    assert looks(30, 2000) == 8
    assert milestone(1999, 30, final=False, most=500) == 480  # no look past ``most``


def test_a_clearly_worse_champion_is_rolled_back_and_a_better_one_kept():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 120)
    good, bad = _answers(rng, truth, 0.95), _answers(rng, truth, 0.6)
    rules = Bake()
    worse = judge(ACCURACY, rules, truth, bad, good, ("2", "1"))
    assert worse.rollback and worse.reason.startswith("v2 is worse than v1")
    assert worse.evidence["v2_accuracy"] == accuracy_score(truth, bad)
    assert worse.evidence["v1_accuracy"] == accuracy_score(truth, good)
    assert worse.evidence["improvement_bound"] < 0
    assert not judge(ACCURACY, rules, truth, good, bad, ("2", "1")).rollback


def test_a_small_loss_within_max_drop_is_kept():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 1000)
    old = _answers(rng, truth, 0.92)
    new = old.copy()
    new[:30] = 1 - truth[:30]  # at most 3 points worse, on the same requests
    assert judge(ACCURACY, Bake(), truth, new, old, ("2", "1")).rollback
    assert not judge(ACCURACY, Bake(max_drop=0.05), truth, new, old, ("2", "1")).rollback


def test_a_champion_as_good_as_the_one_it_replaced_is_rarely_rolled_back_over_a_watch():
    # Every look of a whole watch (each milestone, then the end), over many watches of two
    # equally good versions: the share of watches with any rollback stays below 1 - confidence.
    rules = Bake(min_labels=30, requests=240, confidence=0.9)
    rollbacks, watches = 0, 100
    for seed in range(watches):
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, 2, 240)
        old, new = _answers(rng, truth, 0.85), _answers(rng, truth, 0.85)
        ends = [milestone(n, 30, False) for n in (30, 60, 120)] + [240]
        rollbacks += any(
            judge(ACCURACY, rules, truth[:n], new[:n], old[:n], ("2", "1")).rollback for n in ends
        )
    assert rollbacks / watches <= 1 - rules.confidence


def test_the_estimate_tracks_the_true_score_of_a_calibrated_classifier():
    # Calibrated by construction: each record's class is drawn from the probability logged.
    rng = np.random.default_rng(3)
    for shift in (0.0, 2.5):  # confident traffic, then traffic near the boundary
        logits = rng.normal(2.5 - shift, 1.5, 2000) * rng.choice([-1, 1], 2000)
        p_one = 1 / (1 + np.exp(-logits))
        truth = (rng.uniform(size=2000) < p_one).astype(int)
        predicted = (p_one > 0.5).astype(int)
        probabilities = [{"0": 1 - p, "1": p} for p in p_one]
        for name, score in (
            ("accuracy", accuracy_score),
            ("balanced_accuracy", balanced_accuracy_score),
        ):
            estimate = estimated_score(get_metric(name), predicted.tolist(), probabilities)
            assert abs(estimate - score(truth, predicted)) < 0.03, (shift, name)


def test_no_estimate_without_probabilities():
    assert estimated_score(ACCURACY, [1, 0], [{"0": 0.2, "1": 0.8}, None]) is None
    assert estimated_score(ACCURACY, [], []) is None
