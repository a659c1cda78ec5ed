"""Promotion on shadow evidence: surely better promotes; noise, a missed threshold or one untrusted
key's labels do not."""

from __future__ import annotations

import numpy as np

from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.ml.shadow import judge
from mlserve_assets.spec.models import Gate
from mlserve_assets.spec.watching import Shadow

ACCURACY = get_metric("accuracy")


def _answers(rng: np.random.Generator, truth: np.ndarray, right: float) -> np.ndarray:
    return np.where(rng.uniform(size=len(truth)) < right, truth, 1 - truth)


def _case(right: float, n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    return truth, _answers(rng, truth, right), _answers(rng, truth, 0.75)


def test_a_surely_better_challenger_is_promoted_with_its_figures():
    truth, challenger, served = _case(0.97)
    verdict = judge(
        ACCURACY, Gate(threshold=0.8), Shadow(), truth, challenger, served, ["a"] * 240, {"a"}, "3"
    )
    assert verdict.promote and verdict.reason.startswith("v3 proved better in shadow")
    assert verdict.evidence["v3_accuracy"] == float(np.mean(challenger == truth))
    assert verdict.evidence["served_accuracy"] == float(np.mean(served == truth))
    assert verdict.evidence["improvement_bound"] > 0


def test_noise_a_margin_or_a_missed_threshold_promotes_nothing():
    truth, challenger, served = _case(0.76)
    trusted = (["a"] * 240, {"a"})
    assert not judge(
        ACCURACY, Gate(threshold=0.5), Shadow(), truth, challenger, served, *trusted, "3"
    ).promote
    truth, challenger, served = _case(0.97)
    margin = Gate(threshold=0.5, min_improvement=0.3)
    assert not judge(ACCURACY, margin, Shadow(), truth, challenger, served, *trusted, "3").promote
    high = Gate(threshold=0.99)
    missed = judge(ACCURACY, high, Shadow(), truth, challenger, served, *trusted, "3")
    assert not missed.promote and "misses threshold 0.99" in missed.reason


def test_one_untrusted_key_cannot_carry_the_evidence_alone():
    truth, challenger, served = _case(0.97)
    gate = Gate(threshold=0.5)
    alone = judge(ACCURACY, gate, Shadow(), truth, challenger, served, ["k1"] * 240, set(), "3")
    assert not alone.promote and "key k1 sent 240 of the 240 labels" in alone.reason
    shared = ["k1", "k2"] * 120  # two keys, half each: within source_share 0.5
    assert judge(ACCURACY, gate, Shadow(), truth, challenger, served, shared, set(), "3").promote
    assert judge(
        ACCURACY, gate, Shadow(), truth, challenger, served, ["k1"] * 240, {"k1"}, "3"
    ).promote
