"""Served records become training rows only within the spec's column rules and a label range."""

from __future__ import annotations

import math

import pandas as pd

from mlserve_assets.ml.labels import admissible, breaks, label_range
from mlserve_assets.spec.models import ColumnRule
from serving.model.rules import violations


def test_each_rule_names_the_rows_that_break_it():
    values = pd.Series([0.0, 5.0, 11.0, None, "x"], dtype=object)
    assert breaks(ColumnRule(min=1), values).tolist() == [True, False, False, False, True]
    assert breaks(ColumnRule(max=10), values).tolist() == [False, False, True, False, True]
    assert breaks(ColumnRule(nullable=False), values).tolist() == [False] * 3 + [True, False]
    allowed = breaks(ColumnRule(allowed=[0.0, "x"]), values)
    assert allowed.tolist() == [False, True, True, False, False]


def test_rows_breaking_a_rule_or_outside_the_label_range_are_kept_out_and_counted():
    rows = pd.DataFrame(
        {
            "age": [30, -4, 50, 200, 40, 41],
            "plan": ["a", "b", "z", "a", "a", "b"],
            "y": [10.0, 12.0, 11.0, 9.0, 1e300, -math.inf],
            "prediction_id": list("abcdef"),
        }
    )
    rules = {"age": ColumnRule(min=0, max=120), "plan": ColumnRule(allowed=["a", "b"])}
    labels = label_range(pd.Series([0.0, 20.0]), margin=1.0)
    assert labels == (-20.0, 40.0)
    kept, out = admissible(rows, rules, "y", labels)
    assert kept["prediction_id"].tolist() == ["a"]
    # Each row counted once, under the first rule it breaks: -4 and 200 by age, z by plan.
    assert out == {"age": 2, "plan": 1, "y": 2}
    everything, nothing = admissible(rows, {}, "y", None)
    assert len(everything) == len(rows) and nothing == {}


def test_a_served_record_is_told_each_rule_it_breaks_by_name():
    rules = {
        "age": {"min": 0, "max": 120, "nullable": False},
        "plan": {"allowed": ["a", "b"]},
        "note": {},
    }
    assert violations(rules, {"age": 30, "plan": "a", "note": "x"}) is None
    assert violations(rules, {"age": -1, "plan": "z"}) == [
        "age: below the minimum 0",
        "plan: not one of the allowed values ['a', 'b']",
    ]
    assert violations(rules, {"age": None, "plan": None}) == ["age: null is not allowed"]
    assert violations(rules, {"age": "old", "plan": "b"}) == ["age: not a number"]
    assert violations(rules, {"age": 121.5, "plan": "b"}) == ["age: above the maximum 120"]
