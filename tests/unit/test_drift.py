"""Drift per feature: a generated shift is found and named; training-like traffic stays quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlserve_assets.cli.simulation import SCENARIOS
from mlserve_assets.ml.drift import feature_drift
from mlserve_assets.settings import PROJECT_ROOT
from mlserve_assets.spec.watching import Drift


def _table(
    rng: np.random.Generator, n: int, shift: float = 0.0, plan: str = "basic"
) -> pd.DataFrame:
    """Two numbers, a text column and a boolean; ``shift`` moves ``income``, ``plan`` the text."""
    plans = ["basic", "plus", "pro"]
    weights = [0.6, 0.3, 0.1] if plan == "basic" else [0.1, 0.3, 0.6]
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10 + shift, 0.5, n),
            "plan": rng.choice(plans, n, p=weights),
            "member": rng.uniform(size=n) < 0.3,
        }
    )


def test_a_shifted_number_and_a_shifted_category_are_named_and_nothing_else():
    rng = np.random.default_rng(0)
    reference = _table(rng, 3000)
    served = _table(rng, 500, shift=0.5, plan="pro")
    found = {f.feature: f for f in feature_drift(reference, served, Drift())}
    assert {name for name, f in found.items() if f.drifted} == {"income", "plan"}
    assert found["income"].test == "ks" and found["plan"].test == "chi2"
    assert found["income"].psi > 0.2 and found["age"].psi < 0.1


def test_traffic_from_the_training_distribution_rarely_alarms():
    rng = np.random.default_rng(1)
    reference = _table(rng, 3000)
    rules = Drift()
    alarms = sum(
        any(f.drifted for f in feature_drift(reference, _table(rng, 300), rules))
        for _ in range(100)
    )
    assert alarms <= 100 * rules.alpha  # Bonferroni's bound: 1 in 100 checks at alpha 0.01


def test_unseen_values_and_gaps_count_as_drift_when_they_take_over():
    rng = np.random.default_rng(2)
    reference = _table(rng, 2000)
    served = _table(rng, 400)
    served.loc[:300, "plan"] = "enterprise"  # never seen in training
    served.loc[:300, "age"] = np.nan
    drifted = {f.feature for f in feature_drift(reference, served, Drift()) if f.drifted}
    assert drifted == {"plan", "age"}
    missing = feature_drift(reference, served.drop(columns="member"), Drift())
    assert [f.feature for f in missing if f.drifted] == ["age", "plan", "member"]


def test_a_small_shift_a_large_window_makes_significant_is_not_called_drift():
    rng = np.random.default_rng(3)
    reference = _table(rng, 20000)
    served = _table(rng, 20000, shift=0.05)  # p tiny at this size; PSI about 0.01
    income = next(f for f in feature_drift(reference, served, Drift()) if f.feature == "income")
    assert income.p_value < 1e-6 and not income.drifted


def test_simulate_moves_the_inputs_only_in_its_inputs_scenario():
    # What the README's tour shows: `simulate --scenario inputs` is named by the drift check
    # (x1 reads higher, x2 spreads wider), the concept shifts are not.
    base = pd.read_csv(PROJECT_ROOT / "examples/data/drift_base.csv").drop(columns="label")
    for name, expected in (("inputs", {"x1", "x2"}), ("rotation", set()), ("features", set())):
        served = SCENARIOS[name].rows(1000, 3, seed=5).drop(columns="label")
        found = {f.feature for f in feature_drift(base, served, Drift()) if f.drifted}
        assert found == expected, name
