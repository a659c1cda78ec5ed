"""What a served record's fields must be: the signature's features and each value's rules.

One rule per MLflow type, so every refusal names the record, the field and the problem; the
bounds are exact powers of two that the OpenAPI document states too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

# The range of each integer type; a double must convert to a finite float.
_INTEGER_RANGE = {"long": 1 << 63, "integer": 1 << 31}
_INTEGER_TYPES = set(_INTEGER_RANGE)
_NUMBER_TYPES = {"double", "float", "long", "integer"}
TEXT_TYPES = {"string", "boolean"}


class Feature(NamedTuple):
    """One input of the model's signature: its name, MLflow type, and whether null is refused."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one record."""

    record: int | None
    field: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape clients receive."""
        return {"record": self.record, "field": self.field, "problem": self.problem}


def field_problem(record: dict[str, Any], feature: Feature) -> str | None:
    """Why ``record``'s value for ``feature`` cannot be served, or None if it can."""
    if feature.name not in record:
        return "missing field"
    value, kind = record[feature.name], feature.type
    if value is None:
        return None if not feature.required else f"null is not allowed: expected {_expected(kind)}"
    if kind in _NUMBER_TYPES:
        return _number_problem(value, kind)
    if kind == "string":
        return None if isinstance(value, str) else f"expected text, got {type(value).__name__}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    return f"unsupported feature type {kind} in the model signature"


def _number_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` is not a number the model's ``kind`` (a number type) takes, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number ({kind}), got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if not -NUMBER_LIMIT <= value <= NUMBER_LIMIT:
        return f"number out of range for {kind}: |value| must be at most 2^1023"
    if kind in _INTEGER_TYPES:
        if isinstance(value, float) and not value.is_integer():
            return f"expected an integer ({kind}), got {value}"
        bound = _INTEGER_RANGE[kind]
        if not -bound <= value < bound:
            return f"integer out of range for {kind} ({-bound} to {bound - 1})"
    return None


# Exact powers of two: Python compares them exactly with integers of any size and with floats,
# and the OpenAPI document states them as exact integers, so the service and any validator of
# the document draw the same line. A label within 2^511 squares finitely (live RMSE, retraining).
NUMBER_LIMIT = 2**1023
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LABEL_LIMIT = 2**511


def _expected(kind: str) -> str:
    if kind in _NUMBER_TYPES:
        return f"a number ({kind})"
    return {"string": "text", "boolean": "true or false"}.get(kind, kind)
