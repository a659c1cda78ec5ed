"""Making a version's ONNX twin: convert the fitted pipeline, then prove it answers alike.

The whole logged pipeline is converted (column preparation included) by skl2onnx, in double
precision first and, where that fails or disagrees (tree ensembles compare in single precision),
in single; it is kept only if it agrees with the original on the version's held-out rows and on
edge rows (every column at its observed extremes and beyond them, and gaps where a column may
have them) within the tolerances of ``serving.model.twin``. The verdict, figures and the file's
digest go on the version as ``Tag.ONNX``; a pipeline that cannot be converted or disagrees is
served by scikit-learn, and the verdict says why.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.model.fields import TEXT_TYPES
from serving.model.twin import (
    PROBABILITY_TOLERANCE,
    REGRESSION_TOLERANCE,
    OnnxTwin,
    digest,
    disagreement,
)

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class TwinVerdict:
    """Whether a version's twin may serve, and the figures that say so."""

    verified: bool
    reason: str
    dtype: str | None = None
    rows: int = 0
    max_deviation: float | None = None
    tolerance: float | None = None
    sha256: str | None = None

    def tag(self) -> str:
        """The verdict as the version's ``Tag.ONNX`` value."""
        return json.dumps(asdict(self))


def edge_rows(rows: np.ndarray, nullable: list[bool]) -> np.ndarray:
    """Rows at and beyond each column's observed range, and with a gap where one is allowed.

    Each edge row starts from the column medians and moves one column: to its minimum and
    maximum, a full range below and above them, and to zero; a nullable column also gets NaN.
    """
    low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
    middle = np.nanmedian(rows, axis=0)
    width = np.maximum(high - low, 1.0)
    edges = []
    for j, gaps in enumerate(nullable):
        for value in (low[j], high[j], low[j] - width[j], high[j] + width[j], 0.0):
            edges.append(np.where(np.arange(len(middle)) == j, value, middle))
        if gaps:
            edges.append(np.where(np.arange(len(middle)) == j, np.nan, middle))
    return np.vstack(edges)


def make_twin(
    estimator: Any, inputs: list[tuple[str, str, bool]], held_out: np.ndarray | None, folder: Path
) -> TwinVerdict:
    """Convert ``estimator`` and check it; write ``folder/model.onnx`` only if verified.

    ``inputs`` are the signature's (name, type, required); ``held_out`` the version's held-out
    rows as the service hands them to the model (a float matrix in signature order; None when
    some inputs are text).
    """
    if held_out is None or any(kind in TEXT_TYPES for _, kind, _ in inputs):
        return TwinVerdict(False, "text or boolean inputs: the twin takes numbers only")
    rows = np.vstack([held_out, edge_rows(held_out, [not required for *_, required in inputs])])
    classifier = hasattr(estimator, "predict_proba")
    tolerance = PROBABILITY_TOLERANCE if classifier else REGRESSION_TOLERANCE
    problems = []
    for dtype in DTYPES:
        with tempfile.TemporaryDirectory() as work:
            candidate = Path(work) / "model.onnx"
            try:
                candidate.write_bytes(_converted(estimator, rows, dtype))
                twin = OnnxTwin(candidate, getattr(estimator, "classes_", None), dtype, threads=1)
                with warnings.catch_warnings():  # fitted on a frame, checked on its matrix
                    warnings.filterwarnings("ignore", message="X does not have valid feature")
                    deviation, problem = disagreement(estimator, twin, rows)
            except Exception as exc:  # skl2onnx and onnxruntime raise many kinds
                problems.append(f"{dtype}: not converted: {type(exc).__name__}: {exc}"[:300])
                continue
            if problem is not None:
                problems.append(f"{dtype}: {problem}")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.onnx").write_bytes(candidate.read_bytes())
        return TwinVerdict(
            True,
            f"agrees with scikit-learn on {len(rows)} rows ({len(held_out)} held out) in {dtype}",
            dtype,
            len(rows),
            deviation,
            tolerance,
            digest(folder / "model.onnx"),
        )
    return TwinVerdict(False, "; ".join(problems), rows=len(rows), tolerance=tolerance)


def _converted(estimator: Any, rows: np.ndarray, dtype: str) -> bytes:
    from skl2onnx import to_onnx

    onx = to_onnx(
        estimator,
        rows[:1].astype(dtype),
        # A classifier's probabilities as one tensor, not a list of maps.
        options={"zipmap": False} if hasattr(estimator, "predict_proba") else None,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onx.SerializeToString()
