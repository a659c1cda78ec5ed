"""Data checks run before training, each a named predicate whose failures name column and rule.

The factory turns every outcome into a blocking Dagster asset check, so bad data stops the graph
before a model is fitted on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from pandas.api import types as ptypes
from sklearn.pipeline import Pipeline

from mlserve_assets.ml.prepare import reads_as_integer, whole_numbers
from mlserve_assets.ml.split import split_dataset
from mlserve_assets.ml.time_order import time_problem
from mlserve_assets.spec.models import ColumnRule, ModelSpec

# scikit-learn's stratified split refuses a class with fewer rows than this.
MIN_PER_CLASS = 2
CHECK_DESCRIPTIONS = {
    "schema_matches": "Every column the spec names (features, target, column rules) is present.",
    "target_present": "The target has no gaps, a regression target is numeric, a classification "
    "target has at least two classes.",
    "no_all_null_columns": "No feature column is empty: a column with no value cannot be learned.",
    "column_rules_hold": "The spec's column rules (dtype, min, max, nullable, allowed) hold on "
    "every row.",
}
CHECK_NAMES = tuple(CHECK_DESCRIPTIONS)


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
    """The declared features, or every column but the target (and the split's time column)."""
    if model.features is not None:
        return list(model.features)
    return [c for c in frame.columns if c not in (model.target, model.split.by)]


def kept_columns(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    """What ``validated_dataset`` keeps: the features, the target and the split's time column."""
    kept = [*feature_columns(model, frame), model.target]
    if model.split.by and model.split.by not in kept:
        kept.append(model.split.by)
    return kept


def _schema(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    missing = [c for c in model.required_columns() if c not in frame.columns]
    failures = [f"column {c!r}: required by the spec but absent from the data" for c in missing]
    if not feature_columns(model, frame):
        failures.append("no feature columns: the data has only the target")
    by = model.split.by
    if by and by in frame.columns and (problem := time_problem(frame[by])):
        failures.append(f"column {by!r}: split.by {problem}")
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
    "integer": reads_as_integer,
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


def labelled_rows(model: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows training may use under ``target_missing``, and how many were left out.

    A class target with gaps is read as floats (1.0, 0.0); once the gaps are gone its whole
    numbers are integers again, so the classes served are the ones in the source.
    """
    if model.target_missing == "error" or model.target not in frame.columns:
        return frame, 0
    target = frame[model.target]
    missing = target.isna()
    if not missing.any():
        return frame, 0
    kept = frame[~missing]
    values = kept[model.target]
    if model.task == "classification" and ptypes.is_float_dtype(values) and whole_numbers(values):
        kept = kept.assign(**{model.target: values.astype("int64")})
    return kept, int(missing.sum())


def run_checks(model: ModelSpec, frame: pd.DataFrame) -> list[CheckOutcome]:
    """Every check in CHECK_NAMES order."""
    return [
        CheckOutcome("schema_matches", _schema(model, frame)),
        CheckOutcome("target_present", _target(model, frame)),
        CheckOutcome("no_all_null_columns", _all_null(frame)),
        CheckOutcome("column_rules_hold", _rules(model, frame)),
    ]


def training_problems(model: ModelSpec, frame: pd.DataFrame) -> list[str]:
    """What training on ``frame`` would trip over, each naming model, candidate and column.

    ``mlserve validate`` runs this on the source's rows, so a spec that parses but cannot train
    fails there, with what to change, instead of halfway through a run.
    """
    where = f"model {model.name!r}"
    problems = []
    frame, _ = labelled_rows(model, frame)
    target = frame[model.target]
    if target.isna().any():
        problems.append(
            f"{where}: column {model.target!r}: the target has {int(target.isna().sum())} missing "
            "values: set target_missing: drop to leave those rows out, or fill them in the source"
        )
    elif model.task == "classification" and model.split.stratify and not model.split.by:
        try:
            split_dataset(frame, feature_columns(model, frame), model.target, model.split)
        except ValueError:
            counts = target.value_counts()
            rare = {str(k): int(v) for k, v in counts[counts < MIN_PER_CLASS].items()}
            problems.append(
                f"{where}: column {model.target!r}: classes {rare} have too few rows to stratify "
                f"the test and selection splits (at least {MIN_PER_CLASS} each): add rows, merge "
                "those classes, or set split.stratify: false"
            )
    if model.prepare == "none":
        problems.extend(_unprepared(model, frame[feature_columns(model, frame)]))
    return problems


def _unprepared(model: ModelSpec, features: pd.DataFrame) -> list[str]:
    problems = []
    for candidate in model.candidates:
        built = candidate.build()
        steps = [s for _, s in built.steps] if isinstance(built, Pipeline) else [built]
        where = f"model {model.name!r}: candidate {candidate.name!r}"
        refuses_gaps = _first_to_refuse_gaps(steps)
        takes_text = steps[0].__sklearn_tags__().input_tags.string
        for column in features.columns:
            values = features[column]
            if values.isna().any() and refuses_gaps is not None:
                problems.append(
                    f"{where}: column {column!r} has {int(values.isna().sum())} missing values "
                    f"and {refuses_gaps} cannot take them: remove prepare: none (mlserve then "
                    "imputes) or start the candidate with an imputer"
                )
            if not ptypes.is_numeric_dtype(values) and not takes_text:
                problems.append(
                    f"{where}: column {column!r} holds text and {type(steps[0]).__name__} takes "
                    "numbers only: remove prepare: none (mlserve then one-hot encodes it) or "
                    "encode it in the candidate's steps"
                )
    return problems


def _first_to_refuse_gaps(steps: list) -> str | None:
    """The first step a missing value would break, or None once an imputer has filled them."""
    for step in steps:
        if "Imputer" in type(step).__name__:
            return None
        if not step.__sklearn_tags__().input_tags.allow_nan:
            return type(step).__name__
    return None
