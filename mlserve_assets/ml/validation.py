"""Data checks run before training, each a named predicate whose failures name column and rule.

The factory turns every outcome into a blocking Dagster asset check, so bad data stops the graph
before a model is fitted on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from pandas.api import types as ptypes

from mlserve_assets.spec import ColumnRule, ModelSpec

CHECK_NAMES = ("schema_matches", "target_present", "no_all_null_columns", "column_rules_hold")


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict and the failures behind it."""

    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when nothing failed."""
        return not self.failures


def feature_columns(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    """The declared features, or every column but the target."""
    if model.features is not None:
        return list(model.features)
    return [c for c in frame.columns if c != model.target]


def _schema(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    missing = [c for c in model.required_columns() if c not in frame.columns]
    failures = [f"column {c!r}: required by the spec but absent from the data" for c in missing]
    if not feature_columns(model, frame):
        failures.append("no feature columns: the data has only the target")
    return failures


def _target(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    if model.target not in frame.columns:
        return [f"column {model.target!r}: target column is missing"]
    target = frame[model.target]
    failures = []
    if target.isna().any():
        failures.append(f"column {model.target!r}: target has {int(target.isna().sum())} nulls")
    if model.task == "classification" and target.nunique(dropna=True) < 2:
        failures.append(f"column {model.target!r}: classification needs at least 2 classes")
    if model.task == "regression" and not ptypes.is_numeric_dtype(target):
        failures.append(f"column {model.target!r}: regression target must be numeric")
    return failures


def _all_null(frame: pd.DataFrame) -> list[str]:
    return [f"column {c!r}: every value is null" for c in frame.columns if frame[c].isna().all()]


_DTYPE_TESTS = {
    "numeric": ptypes.is_numeric_dtype,
    "integer": ptypes.is_integer_dtype,
    "string": lambda s: ptypes.is_string_dtype(s) or ptypes.is_object_dtype(s),
    "bool": ptypes.is_bool_dtype,
}


def _rule(column: str, rule: ColumnRule, values: pd.Series) -> list[str]:
    failures = []
    nulls = int(values.isna().sum())
    if not rule.nullable and nulls:
        failures.append(f"column {column!r}: rule nullable=false broken by {nulls} null values")
    present = values.dropna()
    if rule.dtype is not None and not _DTYPE_TESTS[rule.dtype](values):
        failures.append(f"column {column!r}: rule dtype={rule.dtype} broken (found {values.dtype})")
        return failures
    if rule.min is not None and ptypes.is_numeric_dtype(values) and (present < rule.min).any():
        failures.append(
            f"column {column!r}: rule min={rule.min} broken by {int((present < rule.min).sum())} "
            f"values (smallest {present.min()})"
        )
    if rule.max is not None and ptypes.is_numeric_dtype(values) and (present > rule.max).any():
        failures.append(
            f"column {column!r}: rule max={rule.max} broken by {int((present > rule.max).sum())} "
            f"values (largest {present.max()})"
        )
    if rule.allowed is not None:
        bad = present[~present.isin(rule.allowed)]
        if len(bad):
            failures.append(
                f"column {column!r}: rule allowed={rule.allowed} broken by {len(bad)} values "
                f"(e.g. {bad.iloc[0]!r})"
            )
    return failures


def _rules(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    return [
        failure
        for column, rule in model.columns.items()
        if column in frame.columns
        for failure in _rule(column, rule, frame[column])
    ]


def run_checks(model: ModelSpec, frame: pd.DataFrame) -> list[CheckOutcome]:
    """Every check in CHECK_NAMES order."""
    return [
        CheckOutcome("schema_matches", _schema(model, frame)),
        CheckOutcome("target_present", _target(model, frame)),
        CheckOutcome("no_all_null_columns", _all_null(frame)),
        CheckOutcome("column_rules_hold", _rules(model, frame)),
    ]
