"""Rows without a target: left out and counted by default, refused when the spec says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlserve_assets.ml.validation import labelled_rows
from mlserve_assets.spec.models import ModelSpec


def _spec(task: str = "classification", **extra: object) -> ModelSpec:
    estimator = "LogisticRegression" if task == "classification" else "LinearRegression"
    return ModelSpec.model_validate(
        {
            "name": "m",
            "source": {"kind": "sklearn", "dataset": "iris"},
            "target": "y",
            "task": task,
            "candidates": [{"name": "c", "estimator": f"sklearn.linear_model.{estimator}"}],
            "metric": "accuracy" if task == "classification" else "rmse",
            "gate": {"threshold": 0.5 if task == "classification" else 100.0},
            **extra,
        }
    )


def _frame(y: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(len(y), dtype=float), "y": y})


def test_the_default_leaves_unlabelled_rows_out_and_counts_them():
    frame = _frame([1.0, np.nan, 0.0, np.nan, 1.0])
    kept, left_out = labelled_rows(_spec(), frame)
    assert _spec().target_missing == "drop"
    assert left_out == int(frame["y"].isna().sum()) == 2
    assert kept["x"].tolist() == [0.0, 2.0, 4.0]  # the labelled rows, in order
    # A class column with gaps was read as floats: its classes are the integers again.
    assert kept["y"].dtype == np.int64 and kept["y"].tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("task", "y"),
    [("regression", [1.0, np.nan, 2.0]), ("classification", [0.5, np.nan, 1.5])],
    ids=["a regression target", "classes that are not whole numbers"],
)
def test_values_that_are_not_whole_classes_keep_their_type(task, y):
    kept, left_out = labelled_rows(_spec(task), _frame(y))
    assert left_out == 1
    assert kept["y"].dtype == np.float64 and kept["y"].tolist() == [y[0], y[2]]


def test_error_and_a_complete_target_leave_the_frame_as_it_is():
    gaps = _frame([1.0, np.nan])
    kept, left_out = labelled_rows(_spec(target_missing="error"), gaps)
    assert left_out == 0 and kept is gaps
    whole = _frame([1.0, 0.0])
    kept, left_out = labelled_rows(_spec(), whole)
    assert left_out == 0 and kept is whole


def test_an_unknown_policy_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="target_missing"):
        _spec(target_missing="fill")
