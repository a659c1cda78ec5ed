"""Column preparation: what each column is, and the ColumnTransformer in front of every candidate.

Real tables hold text and gaps, which scikit-learn's estimators refuse. When a table has either, and
unless the spec says ``prepare: none``, every candidate is fitted behind a ColumnTransformer built
from the columns' kinds: numbers are imputed with the median and scaled, text and booleans are
imputed with a constant and one-hot encoded with unknown categories ignored. It is part of the
fitted Pipeline, so the logged model, the served model and every retraining prepare rows exactly
alike. Columns are addressed by position, so the service can hand the model a plain array in
signature order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlserve_assets.spec.models import ModelSpec

Kind = Literal["numeric", "categorical"]
_DECLARED: dict[str, Kind] = {
    "numeric": "numeric",
    "integer": "numeric",
    "string": "categorical",
    "bool": "categorical",
}


def column_kinds(spec: ModelSpec, frame: pd.DataFrame, features: list[str]) -> dict[str, Kind]:
    """Each feature's kind: as ``columns:`` declares it, else numeric for numbers, else categorical.

    Booleans count as categorical: a boolean column with gaps is read as text, and one-hot
    encoding treats both the same way.
    """
    kinds: dict[str, Kind] = {}
    for name in features:
        declared = spec.columns.get(name)
        if declared is not None and declared.dtype is not None:
            kinds[name] = _DECLARED[declared.dtype]
        else:
            column = frame[name]
            numeric = ptypes.is_numeric_dtype(column) and not ptypes.is_bool_dtype(column)
            kinds[name] = "numeric" if numeric else "categorical"
    return kinds


def needs_preparation(frame: pd.DataFrame, kinds: dict[str, Kind]) -> bool:
    """Whether any column has text or gaps.

    All-numeric tables without gaps go to the candidates as they are, so their models pay nothing
    at serving for a step that would change nothing (scale in the candidate's steps where the
    estimator needs it, as the examples do).
    """
    return "categorical" in kinds.values() or bool(frame[list(kinds)].isna().any().any())


def preparation(kinds: dict[str, Kind]) -> ColumnTransformer:
    """The unfitted ColumnTransformer for these kinds, columns by position in ``kinds``' order."""
    names = list(kinds)
    numeric = [i for i, n in enumerate(names) if kinds[n] == "numeric"]
    categorical = [i for i, n in enumerate(names) if kinds[n] == "categorical"]
    parts = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        parts.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        steps = [
            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
        parts.append(("categorical", Pipeline(steps), categorical))
    return ColumnTransformer(parts, remainder="drop")


def as_text(frame: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """Categorical columns as text, gaps (None or NaN) as NaN.

    One type per column, as the encoder needs, and the values the service builds from JSON
    (``true`` becomes ``"True"``).
    """
    out = frame.copy()
    for name, kind in kinds.items():
        if kind == "categorical" and name in out:
            column = out[name]
            out[name] = column.astype(str).where(column.notna(), np.nan).astype(object)
    return out


def whole_numbers(values: pd.Series) -> bool:
    """Whether every present value is a whole number (3.0 is, 3.5 is not), at least one present."""
    present = values.dropna()
    return bool(len(present)) and bool((present == np.floor(present)).all())


def reads_as_integer(column: pd.Series) -> bool:
    """Whether a column holds integers, gaps allowed.

    pandas reads an integer column with gaps as floats (3.0, NaN, 5.0): whole numbers with gaps
    are integers that have gaps, so the contract takes 3 or null and refuses 3.5.
    """
    if ptypes.is_bool_dtype(column):
        return False
    if ptypes.is_integer_dtype(column):
        return True
    return ptypes.is_float_dtype(column) and bool(column.isna().any()) and whole_numbers(column)


def input_schema(frame: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(name, MLflow type, required) per column, from the rows as the source gave them.

    A column with gaps in the training data is optional: the service accepts ``null`` there and
    the model imputes it. Whole numbers stay ``long``, so the service refuses 3.5 for them.
    """
    schema = []
    for name in frame.columns:
        column = frame[name]
        if ptypes.is_bool_dtype(column):
            kind = "boolean"
        elif reads_as_integer(column):
            kind = "long"
        elif ptypes.is_numeric_dtype(column):
            kind = "double"
        else:
            present = column.dropna()
            kind = "boolean" if len(present) and present.map(type).eq(bool).all() else "string"
        schema.append((str(name), kind, not bool(column.isna().any())))
    return schema
