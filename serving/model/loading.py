"""A version loaded to serve: from a folder (a bento's copy) or the registry, checked to predict.

A model that cannot score its own logged example is refused before it could replace one that
answers; scikit-learn's warning about feature names is silenced on load (the service hands the
estimator a float array in signature order, ``served``).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from serving.model.artifact import RefusedModel
from serving.model.fields import Feature
from serving.model.served import ServedModel
from serving.model.twin import twin_or_original
from serving.registry import RegistryClient, download_version, read_model, version_metadata


def _first_record(frame: Any) -> dict[str, Any] | None:
    """The first record of the input example logged with the model (training data)."""
    if frame is None or len(frame) == 0:
        return None
    row = frame.iloc[0]
    return {
        k: None if v is None or v != v else getattr(v, "item", lambda v=v: v)()
        for k, v in row.items()
    }


def load_from_dir(
    model_dir: Path,
    meta: dict[str, Any],
    trusted: frozenset[str],
    runtime: str = "auto",
    threads: int = 1,
) -> ServedModel:
    """A model from a local MLflow model folder (a bento's copy) and its recorded metadata.

    A model that cannot score its own logged example is refused before it could replace one that
    answers (``RefusedModel``); ``runtime`` "auto" serves its verified ONNX twin on ``threads``.
    """
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    files = read_model(model_dir, trusted)
    inputs = {column[0] for column in files.inputs}
    # Rules on columns the model does not take (its target) have nothing to check in a record.
    rules = json.loads(meta.get("column_rules") or "{}")
    served = ServedModel(
        name=meta["name"],
        version=str(meta["version"]),
        run_id=meta.get("run_id", ""),
        metric=meta.get("metric"),
        score=float(meta["score"]) if meta.get("score") is not None else None,
        estimator=files.estimator,
        features=[Feature(*column) for column in files.inputs],
        example=_first_record(files.example),
        rules={column: rule for column, rule in rules.items() if column in inputs},
    )
    if served.example is None:
        raise RefusedModel("it has no input example to check that it predicts")
    matrix, problems = served.check([served.example])
    try:
        if matrix is None:
            raise ValueError("; ".join(p.problem for p in problems))
        scored = served.predict(matrix)
    except Exception as exc:  # whatever a foreign estimator raises, it does not serve
        raise RefusedModel(f"it cannot predict its own input example: {exc}") from exc
    if scored.unscorable or len(scored.labels) != 1:
        raise RefusedModel("its prediction for its own input example is not a number")
    if runtime == "sklearn":
        return served
    chosen, name = twin_or_original(files.estimator, model_dir, meta.get("onnx"), matrix, threads)
    return replace(served, estimator=chosen, runtime=name)


def load_version(
    client: RegistryClient,
    name: str,
    version: str,
    trusted: frozenset[str],
    runtime: str = "auto",
    threads: int = 1,
) -> ServedModel:
    """Download one registered version from the registry ``client`` reads, and load it.

    The files go once loaded (the estimator and the ONNX session live in memory): a service that
    follows a retraining loop for months would otherwise keep every version it ever served on disk.
    """
    meta = version_metadata(client, name, version)
    with tempfile.TemporaryDirectory(prefix="mlserve-load-") as work:
        local = download_version(client, name, version, Path(work))
        return load_from_dir(local, meta, trusted, runtime, threads)
