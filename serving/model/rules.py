"""The spec's column rules applied to one served record: the one home of what breaking them means.

The signature admits a record (types, names); the rules (min, max, allowed, nullable) say whether
it is fit to learn from. A record that breaks one is answered, logged with its violations named
(``predictions.violations``), and never becomes a training row: training reads the same function
(``mlserve_assets.ml.labels.breaks``), so the log and the training data cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Rules = Mapping[str, Mapping[str, Any]]
"""Column name -> its rule (``min``, ``max``, ``allowed``, ``nullable``), as the spec has it."""


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def violation(rule: Mapping[str, Any], value: Any) -> str | None:
    """What ``value`` breaks in ``rule``, or None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None if rule.get("nullable", True) else "null is not allowed"
    low, high, allowed = rule.get("min"), rule.get("max"), rule.get("allowed")
    if low is not None or high is not None:
        number = _number(value)
        if number is None:
            return "not a number"
        if low is not None and not number >= low:
            return f"below the minimum {low}"
        if high is not None and not number <= high:
            return f"above the maximum {high}"
    if allowed is not None and value not in allowed:
        return f"not one of the allowed values {list(allowed)}"
    return None


def violations(rules: Rules, record: Mapping[str, Any]) -> list[str] | None:
    """Each rule ``record`` breaks, as ``column: problem``; None when it breaks none."""
    found = [
        f"{column}: {problem}"
        for column, rule in rules.items()
        if (problem := violation(rule, record.get(column))) is not None
    ]
    return found or None
