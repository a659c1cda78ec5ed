"""One benchmark table: every measured row with its ratios and the target it answers.

Each section returns :class:`Row` objects; ``table`` renders them as one Markdown table, the form
the README quotes, so a run's output is pasted, never retyped.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Row:
    """One measured figure: what, how much, against what, and whether it meets its target.

    ``met`` is None when the row has no target of its own (a baseline, an anchor, a reference).
    """

    section: str
    measure: str
    value: str
    x_baseline: float | None = None
    x_anchor: float | None = None
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Bench:
    """What every section shares: the store kind, a database per name, a work folder, rounds."""

    db: str
    database: Callable[[str], str]
    work: Path
    rounds: int
    database_processes: Callable[[], list[psutil.Process]] = list
    """The database server's processes (none for SQLite, which runs inside its writer)."""


def median(values: list[float]) -> float:
    """The median, the one statistic every row reports over its rounds."""
    return statistics.median(values)


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table, sections in the order they ran."""
    lines = [
        "| section | measure | value | x baseline | x best anchor | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {None: "", True: "yes", False: "**no**"}[row.met]
        lines.append(
            f"| {row.section} | {row.measure} | {row.value} | {_ratio(row.x_baseline)} "
            f"| {_ratio(row.x_anchor)} | {row.target} | {met} |"
        )
    return "\n".join(lines)
