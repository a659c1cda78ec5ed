"""The service in this process (``ModelService.to_asgi()``), on a real SQLite registry and log.

One per test session: BentoML registers its request metrics in the process-wide Prometheus
registry when the app is built, so a second in-process service would collide with the first.
The registry poll runs every 0.2 s, as it would in a deployment, only faster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from starlette.testclient import TestClient

from harness.registries import promote_new_version, registry_at
from serving.service import ModelService
from serving.store.ids import new_prediction_id
from serving.store.tables import PredictionRow

FEEDBACK_KEY, ADMIN_KEY = "feedback-key-01234", "admin-key-0123456"
PREDICT_KEY = "predict-key-01234"


def bearer(key: str) -> dict[str, str]:
    """The header that presents ``key``."""
    return {"Authorization": f"Bearer {key}"}


class Served:
    """The in-process service and what it was started from (model ``bc``, v1 ``estimator``)."""

    def __init__(self, client: TestClient, folder: Path, estimator: BaseEstimator) -> None:
        self.client, self.folder, self.estimator = client, folder, estimator
        self.registry, self.log = registry_at(folder)

    def document(self) -> dict:
        """The OpenAPI document the service serves now."""
        return self.client.get("/openapi.json").json()

    def conforms(self, body: object, schema: str) -> None:
        """Fail unless ``body`` is valid against the document's ``schema``."""
        document = self.document()
        ref = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
        jsonschema.validate(body, ref)

    def logged(self) -> str:
        """A prediction logged as the service logs one, for feedback to label."""
        row = PredictionRow(new_prediction_id(), time.time(), "bc", "1", {"x": 1.0}, 0)
        self.log.store.insert_predictions([row])
        return row.prediction_id

    def version(self) -> str:
        """The version ``GET /model`` says serves."""
        return self.client.get("/model", headers=bearer(PREDICT_KEY)).json()["version"]

    def reload(self) -> dict:
        """``POST /admin/reload``'s answer."""
        return self.client.post("/admin/reload", headers=bearer(ADMIN_KEY)).json()


@contextmanager
def in_process_service(
    folder: Path, estimator: BaseEstimator, rows: pd.DataFrame
) -> Iterator[Served]:
    """``estimator`` (fitted on ``rows``) promoted as ``bc`` v1 and served in this process."""
    registry, log = registry_at(folder)
    promote_new_version(registry, log, "bc", estimator, rows)
    env = {
        "MLSERVE_HOME": str(folder),
        "MLSERVE_MODEL": "bc",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLSERVE_PREDICTIONS_URL": log.url,
        "MLSERVE_LOG_PREDICTIONS": "false",  # the log's writer is a process: integration tier
        "MLSERVE_POLL_SECONDS": "0.2",
        "MLSERVE_OPEN_SCOPES": "",
        "MLSERVE_API_KEYS": f"predict:{PREDICT_KEY}\nfeedback:{FEEDBACK_KEY}\nadmin:{ADMIN_KEY}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with TestClient(ModelService.to_asgi()) as client:
            yield Served(client, folder, estimator)
    log.store.dispose()
