"""The common template the service is measured against.

FastAPI + uvicorn, the model loaded from MLflow, a DataFrame per request and one synchronous
INSERT and commit per record.

Run with ``uvicorn bench.baseline_app:app``; configured by the same environment variables as the
service (MLFLOW_TRACKING_URI, MLSERVE_MODEL, MLSERVE_PREDICTIONS_URL).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import mlflow
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow

# Both URIs: with only the registry set, MLflow makes a tracking store in the working directory.
mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
mlflow.set_registry_uri(os.environ["MLFLOW_TRACKING_URI"])
MODEL_NAME = os.environ["MLSERVE_MODEL"]
model = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@champion")
store = PredictionStore(os.environ["MLSERVE_PREDICTIONS_URL"])
store.create_schema()
app = FastAPI()


class Body(BaseModel):
    """Records to predict."""

    records: list[dict[str, Any]]


@app.post("/predict")
def predict(body: Body) -> dict[str, Any]:
    """Predict, then log each record with its own INSERT and commit."""
    labels = model.predict(pd.DataFrame(body.records)).tolist()
    answers = []
    for record, label in zip(body.records, labels, strict=True):
        row = PredictionRow(uuid.uuid4().hex, time.time(), MODEL_NAME, "baseline", record, label)
        store.insert_predictions([row])
        answers.append({"prediction_id": row.prediction_id, "prediction": label})
    return {"predictions": answers}
