"""The served model's checks of one record and one label, value by value (no server needed).

Expected answers come from the MLflow types' own ranges and float arithmetic, not from the checks.
"""

from __future__ import annotations

import math

import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor

from serving.model.fields import Feature
from serving.model.served import ServedModel


def _model(estimator, features: list[Feature]) -> ServedModel:
    return ServedModel("m", "1", "run", "metric", None, estimator, features)


REGRESSOR = _model(DummyRegressor().fit([[0.0]], [1.0]), [Feature("x", "double")])
CLASSIFIER = _model(DummyClassifier().fit([[0.0], [1.0]], [0, 1]), [Feature("x", "double")])
TYPED = _model(
    DummyRegressor().fit([[0.0, 0.0, 0.0]], [1.0]),
    [Feature("n", "long"), Feature("i", "integer"), Feature("x", "double", required=False)],
)


def _problems(record: dict) -> dict[str, str]:
    _, errors = TYPED.check([record])
    return {e.field: e.problem for e in errors}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("n", 3.5, "expected an integer"),
        ("i", 3.5, "expected an integer"),
        ("n", True, "expected a number"),
        ("n", 2**63, "out of range for long"),
        ("n", -(2**63) - 1, "out of range for long"),
        ("i", 2**31, "out of range for integer"),
        ("x", 10**400, "out of range"),
        ("x", -(2**1023) - 1, "out of range"),
        ("x", math.inf, "finite"),
        ("x", math.nan, "finite"),
        ("n", None, "null is not allowed"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(field, value, words):
    record = {"n": 1, "i": 1, "x": 0.5, field: value}
    problems = _problems(record)
    assert list(problems) == [field]
    assert words in problems[field]


@pytest.mark.parametrize(
    "record",
    [
        {"n": 3.0, "i": 3, "x": None},  # 3.0 is an integer; x is nullable
        {"n": 2**63 - 1, "i": -(2**31), "x": 2**1023},
        {"n": -(2**63), "i": 2**31 - 1, "x": -(2**1023)},
    ],
)
def test_values_at_the_edges_of_each_type_are_accepted(record):
    matrix, errors = TYPED.check([record])
    assert errors == []
    assert matrix.shape == (1, 3)


def test_an_integer_past_64_bits_is_logged_as_the_float_the_model_reads():
    record = {"n": 1, "i": 1, "x": 2**100}
    matrix, errors = TYPED.check([record])
    assert errors == []
    assert record["x"] == float(2**100) and isinstance(record["x"], float)
    assert matrix[0, 2] == float(2**100)


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (150, False),
        (-2.5, False),
        (2**511, False),  # squares to 2**1022: finite
        (float(2**511), False),
        (2**511 + 1, True),
        (1e308, True),  # stored, its squared error would overflow
        (10**400, True),
        (math.nan, True),
        (math.inf, True),
        ("150", True),
        (True, True),
        (None, True),
        ([1], True),
    ],
)
def test_regression_labels_must_square_to_a_finite_number(value, refused):
    assert (REGRESSOR.check_label(value) is not None) is refused
    if not refused:
        assert math.isfinite(float(value) * float(value))


@pytest.mark.parametrize(("value", "refused"), [(0, False), (1, False), (2, True), ("1", True)])
def test_classification_labels_must_be_a_class(value, refused):
    assert (CLASSIFIER.check_label(value) is not None) is refused


def test_non_finite_output_is_named_not_answered():
    scored = REGRESSOR.predict(TYPED.check([{"n": 1, "i": 1, "x": 1.0}])[0][:, :1])
    assert scored.unscorable == []
    overflowing = _model(_Overflow(), [Feature("x", "double")])
    scored = overflowing.predict(overflowing.check([{"x": 1.0}, {"x": 2.0}])[0])
    assert scored.unscorable == [1]


class _Overflow:
    """A regressor whose output overflows for x > 1, as a linear model does far out of range."""

    def predict(self, matrix):
        import numpy as np

        return np.where(matrix[:, 0] > 1, np.inf, matrix[:, 0])


FLOATS = _model(
    DummyRegressor().fit([[0.0, 0.0]], [1.0]), [Feature("a", "double"), Feature("b", "float")]
)


def test_all_float_records_fill_the_matrix_at_once_and_bad_ones_are_still_named():
    """Models with only floating-point features take a fast path; it must refuse the same."""
    records = [
        {"a": 0.5, "b": -2.25},
        {"a": math.nan, "b": 1.0},
        {"a": 1.0},
        {"a": 1.0, "b": 2.0, "c": 3.0},
        {"a": 1.7e308, "b": 0.0},  # finite, past 2^1023
        {"b": 3.0, "a": 4.0},  # any key order
        {"a": 1, "b": True},
        [1.0, 2.0],
    ]
    _, errors = FLOATS.check(records)
    assert {(e.record, e.field) for e in errors} == {
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, "a"),
        (6, "b"),
        (7, ""),
    }
    matrix, errors = FLOATS.check([records[0], records[5], {"a": 7, "b": -0.0}])
    assert errors == []
    assert matrix.tolist() == [[0.5, -2.25], [4.0, 3.0], [7.0, -0.0]]
