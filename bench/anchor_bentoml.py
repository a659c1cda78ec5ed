"""Anchor: BentoML's own way to serve the same model, with no logging.

An ``@bentoml.service`` class with one ``@bentoml.api``. Run with
``bentoml serve bench.anchor_bentoml:Anchor``; configured by MLFLOW_TRACKING_URI and
MLSERVE_MODEL like the service.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import mlflow
import pandas as pd


@bentoml.service(traffic={"timeout": 30})
class Anchor:
    """The champion, loaded from MLflow once per worker."""

    def __init__(self) -> None:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(os.environ["MLFLOW_TRACKING_URI"])
        self.model = mlflow.sklearn.load_model(f"models:/{os.environ['MLSERVE_MODEL']}@champion")
        self.classes = [str(c) for c in self.model.classes_]

    @bentoml.api
    def predict(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Each record's label and class probabilities."""
        proba = self.model.predict_proba(pd.DataFrame(records))
        labels = self.model.classes_[proba.argmax(axis=1)].tolist()
        return {
            "predictions": [
                {"prediction": label, "probabilities": dict(zip(self.classes, row, strict=True))}
                for label, row in zip(labels, proba.tolist(), strict=True)
            ]
        }
