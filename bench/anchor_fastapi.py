"""Anchor: the plain FastAPI app a user would write to serve the same model, with no logging.

The champion loaded from MLflow once, a DataFrame per request, labels and class probabilities
answered. Run with ``uvicorn bench.anchor_fastapi:app``; configured by MLFLOW_TRACKING_URI and
MLSERVE_MODEL like the service.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
mlflow.set_registry_uri(os.environ["MLFLOW_TRACKING_URI"])
model = mlflow.sklearn.load_model(f"models:/{os.environ['MLSERVE_MODEL']}@champion")
app = FastAPI()


class Body(BaseModel):
    """Records to predict."""

    records: list[dict[str, Any]]


@app.post("/predict")
def predict(body: Body) -> dict[str, Any]:
    """Each record's label and class probabilities."""
    frame = pd.DataFrame(body.records)
    proba = model.predict_proba(frame)
    labels = model.classes_[proba.argmax(axis=1)].tolist()
    classes = [str(c) for c in model.classes_]
    return {
        "predictions": [
            {"prediction": label, "probabilities": dict(zip(classes, row, strict=True))}
            for label, row in zip(labels, proba.tolist(), strict=True)
        ]
    }
