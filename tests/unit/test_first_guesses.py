"""`mlserve init`'s first guesses and the time split they propose, without a process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from mlserve_assets.cli.scaffold import scaffold_spec
from mlserve_assets.ml.prepare import input_schema
from mlserve_assets.ml.split import split_dataset
from mlserve_assets.ml.time_order import time_problem
from mlserve_assets.ml.validation import feature_columns, kept_columns
from mlserve_assets.spec.models import ModelSpec


def _table(n: int = 200, positive: float = 0.31) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=n, freq="D")
    return pd.DataFrame(
        {
            "day": rng.permutation(days.strftime("%Y-%m-%d")),  # dates as text, out of order
            "x": rng.normal(size=n),
            "y": (rng.uniform(size=n) < positive).astype(int),
        }
    )


def _model(frame: pd.DataFrame) -> ModelSpec:
    [model] = scaffold_spec(frame, "m", "m.csv", "y")["models"]
    return ModelSpec.model_validate(model)


def test_imbalanced_classes_get_balanced_accuracy_with_its_own_baseline():
    model = _model(_table(positive=0.31))
    assert model.metric == "balanced_accuracy"
    assert model.gate.threshold == pytest.approx(0.51)  # always one class scores 1/2
    balanced = _model(_table(positive=0.5))
    assert balanced.metric == "accuracy"


def test_a_regression_bar_is_the_mean_of_the_rows_judged_whatever_their_spread():
    frame = _table().assign(y=lambda f: 20 + 3 * f["x"] + np.random.default_rng(1).normal(size=200))
    model = _model(frame)
    assert model.metric == "r2"
    # Answering the mean misses the bar on rows of any spread; a model that tracks the target
    # clears it on rows spread five times wider than the rows init saw.
    wider = 5 * frame["y"]
    assert r2_score(wider, np.full(len(wider), wider.mean())) < model.gate.threshold
    assert r2_score(wider, 5 * (20 + 3 * frame["x"])) > model.gate.threshold


def test_a_date_column_is_proposed_as_the_time_split_and_is_not_a_feature():
    frame = _table()
    model = _model(frame)
    assert model.split.by == "day"
    assert feature_columns(model, frame) == ["x"]
    assert kept_columns(model, frame) == ["x", "y", "day"]
    assert _model(frame.drop(columns="day")).split.by is None


def test_the_time_split_judges_on_the_newest_rows_and_trains_on_the_oldest():
    frame = _table()
    model = _model(frame)
    data = split_dataset(frame, ["x"], "y", model.split)
    day = pd.to_datetime(frame["day"])  # an independent reading of the dates
    train, select, test = (
        day[rows.x.index] for rows in (data.base_train, data.base_select, data.base_test)
    )
    assert train.max() < select.min() and select.max() < test.min()
    assert len(test) == 50 and len(select) == 30 and len(train) == 120  # 25%, then 20% of the rest
    assert list(data.features) == ["x"]


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (["2024-01-02", "soon", "2024-01-01"], "1 values are none of these (e.g. 'soon')"),
        (["2024-01-02", None, "2024-01-01"], "1 missing values"),
        ([True, False, True], "3 values are none of these"),
    ],
)
def test_a_column_that_cannot_order_rows_says_why(values, problem):
    assert problem in (time_problem(pd.Series(values)) or "")


def test_numbers_and_timestamps_order_rows():
    assert time_problem(pd.Series([3, 1, 2])) is None
    assert time_problem(pd.Series(["2024-01-01T10:00:00+02:00", "2024-01-01 09:00"])) is None


def test_whole_numbers_with_gaps_are_an_integer_column_and_other_floats_are_not():
    frame = pd.DataFrame(
        {
            "count": [3.0, np.nan, 5.0],  # how pandas reads "3,,5"
            "price": [3.5, np.nan, 5.0],
            "whole": [3.0, 4.0, 5.0],  # no gaps: the file wrote decimals, so floats it is
            "ints": [3, 4, 5],
        }
    )
    assert input_schema(frame) == [
        ("count", "long", False),
        ("price", "double", False),
        ("whole", "double", True),
        ("ints", "long", True),
    ]
