"""The ONNX twin of a version: the same fitted pipeline, run by onnxruntime, when it is verified.

A 200-tree forest costs about 20 ms per scikit-learn call even for one row; onnxruntime runs the
same trees in a few hundredths of that (docs/benchmarks.md). Training converts each registered
version (``mlserve_assets.ml.twin``), checks the twin against the original on the version's
held-out rows and on edge rows, and records the verdict on the version (``Tag.ONNX``) with the
file's SHA-256. The service serves the twin only when that verdict says verified, the file it
downloaded has that digest, and the twin agrees with the original on the version's own input
example once more; otherwise, or with ``MLSERVE_RUNTIME=sklearn``, scikit-learn answers.

The twin has the estimator's interface (``classes_``, ``predict``, ``predict_proba``), so nothing
downstream knows which runtime answered; ``ServedModel.runtime`` says it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("mlserve.serving")

TWIN_FILE = "onnx/model.onnx"
"""Where the twin sits in the version's model folder."""
PROBABILITY_TOLERANCE = 1e-4
"""Largest difference allowed between a twin's and the original's class probabilities."""
REGRESSION_TOLERANCE = 1e-4
"""Largest difference allowed between regression values, relative to max(1, |value|)."""


def digest(path: Path) -> str:
    """The file's SHA-256, as the verdict records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OnnxTwin:
    """An ONNX model with a fitted estimator's interface, inputs cast to the twin's dtype."""

    def __init__(self, path: Path, classes: Any, dtype: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not ours to act on
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._dtype = np.dtype(dtype)
        if classes is not None:
            self.classes_ = classes
            self.predict_proba = self._probabilities  # only classifiers have one

    def _probabilities(self, matrix: np.ndarray) -> np.ndarray:
        [proba] = self._session.run(["probabilities"], {self._input: self._cast(matrix)})
        return proba

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Regression values (a regressor's only output), or a classifier's labels."""
        output = self._session.get_outputs()[0].name
        [values] = self._session.run([output], {self._input: self._cast(matrix)})
        return values.ravel()

    def _cast(self, matrix: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(matrix, dtype=self._dtype)


def disagreement(original: Any, twin: Any, rows: np.ndarray) -> tuple[float, str | None]:
    """The largest difference between the two on ``rows``, and the first problem, if any.

    Classifiers: the probabilities within ``PROBABILITY_TOLERANCE`` and the most probable class
    the same on every row where the original's top two are further apart than that; regressors:
    each value within ``REGRESSION_TOLERANCE`` of max(1, |value|). Non-finite output on either
    side is a problem.
    """
    if hasattr(original, "predict_proba"):
        want, got = original.predict_proba(rows), twin.predict_proba(rows)
        if want.shape != got.shape or not np.isfinite(got).all():
            return float(
                "inf"
            ), f"probabilities of shape {got.shape}, not {want.shape}, or not finite"
        deviation = float(np.abs(want - got).max(initial=0.0))
        # Where the original's two most probable classes are within the tolerance (a forest
        # with an even number of trees splits its votes), either class is an answer within it.
        top = np.sort(want, axis=1)[:, -2:] if want.shape[1] > 1 else np.ones((len(want), 2))
        decided = top[:, 1] - top[:, 0] > PROBABILITY_TOLERANCE
        flipped = np.flatnonzero((want.argmax(axis=1) != got.argmax(axis=1)) & decided)
        if flipped.size:
            return deviation, f"{flipped.size} of {len(rows)} rows get another class"
        if deviation > PROBABILITY_TOLERANCE:
            return deviation, f"probabilities differ by {deviation:.2g} > {PROBABILITY_TOLERANCE:g}"
        return deviation, None
    want, got = np.asarray(original.predict(rows), float).ravel(), twin.predict(rows)
    if want.shape != got.shape or not np.isfinite(got).all():
        return float("inf"), f"values of shape {got.shape}, not {want.shape}, or not finite"
    relative = np.abs(want - got) / np.maximum(1.0, np.abs(want))
    deviation = float(relative.max(initial=0.0))
    if deviation > REGRESSION_TOLERANCE:
        return deviation, f"values differ by {deviation:.2g} (relative) > {REGRESSION_TOLERANCE:g}"
    return deviation, None


def twin_or_original(
    original: Any, model_dir: Path, verdict: str | None, example: np.ndarray, threads: int
) -> tuple[Any, str]:
    """The estimator to serve and its runtime: the twin if its verdict, file and answers hold.

    ``verdict`` is the version's ``Tag.ONNX`` (None: never converted). A verified twin whose file
    is not the one verified, or which disagrees with the original on ``example``, is not served:
    whoever can write the artifact store must not be able to change answers through it.
    """
    found = json.loads(verdict) if verdict else {}
    if not found.get("verified"):
        return original, "scikit-learn"
    path = model_dir / TWIN_FILE
    if not path.is_file() or digest(path) != found.get("sha256"):
        logger.error("not serving the ONNX twin: %s is not the file that was verified", path)
        return original, "scikit-learn"
    try:
        twin = OnnxTwin(path, getattr(original, "classes_", None), found["dtype"], threads)
    except ImportError:  # a bento built for scikit-learn carries no onnxruntime
        logger.error("not serving the ONNX twin: onnxruntime is not installed")
        return original, "scikit-learn"
    _, problem = disagreement(original, twin, example)
    if problem is not None:
        logger.error("not serving the ONNX twin: on the input example, %s", problem)
        return original, "scikit-learn"
    return twin, "onnx"
