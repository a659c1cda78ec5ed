"""A column that orders rows in time: dates, timestamps or increasing numbers, read one way.

The time split (``split.by``) and ``mlserve init``'s proposal of it read the column here, so a
column the split accepts is exactly one the proposal would make.
"""

from __future__ import annotations

import warnings

import pandas as pd
from pandas.api import types as ptypes


def as_time(values: pd.Series) -> pd.Series:
    """The column as something that sorts by time; values it cannot read become gaps.

    Numbers stay as they are; anything else is read as UTC timestamps (ISO dates, datetimes
    with or without zones).
    """
    if ptypes.is_bool_dtype(values):
        return pd.Series(pd.NaT, index=values.index)
    if ptypes.is_numeric_dtype(values):
        return values.astype(float)
    if ptypes.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    with warnings.catch_warnings():  # "could not infer format": each value is then read alone
        warnings.simplefilter("ignore", UserWarning)
        return pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="mixed")


def time_problem(values: pd.Series) -> str | None:
    """Why ``values`` cannot order rows in time (None if they can)."""
    read = as_time(values)
    unread = read.isna() & values.notna()
    if unread.any():
        example = values[unread].iloc[0]
        return (
            f"needs dates, timestamps or numbers: {int(unread.sum())} values are none of these "
            f"(e.g. {example!r})"
        )
    if values.isna().any():
        return f"has {int(values.isna().sum())} missing values: each row needs its time"
    return None


def is_time_column(values: pd.Series) -> bool:
    """Whether a column reads as dates or timestamps throughout (what ``mlserve init`` proposes).

    Numbers are left out: an increasing id and a measurement look alike.
    """
    if ptypes.is_numeric_dtype(values) or ptypes.is_bool_dtype(values) or not values.notna().any():
        return False
    return time_problem(values) is None
