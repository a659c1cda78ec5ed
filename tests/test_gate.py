"""The gate never promotes a worse model, whatever the metric's direction."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlserve_assets.ml.gate import decide
from mlserve_assets.ml.metrics import METRICS, get_metric
from mlserve_assets.spec import Gate

scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
any_score = st.floats(allow_nan=True, allow_infinity=True)


@given(
    metric=st.sampled_from(sorted(METRICS)),
    challenger=any_score,
    champion=st.none() | any_score,
    threshold=scores,
    margin=st.floats(min_value=0, max_value=1e3, allow_nan=False),
)
def test_never_promotes_a_worse_model(metric, challenger, champion, threshold, margin):
    m = get_metric(metric)
    decision = decide(m, challenger, champion, Gate(threshold=threshold, min_improvement=margin))
    if not decision.promote:
        return
    assert math.isfinite(challenger)
    assert m.meets(challenger, threshold)
    if champion is not None and math.isfinite(champion):
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


def test_negative_margin_is_refused():
    with pytest.raises(ValueError, match="min_improvement"):
        Gate(threshold=0.5, min_improvement=-0.1)
