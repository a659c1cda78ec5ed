"""The BentoML service: predictions from the current champion, a durable log, and feedback.

``ModelService`` holds what lives as long as the process (the model, the log, the stores) and
follows the registry's ``champion``; each endpoint is one route below it. The routes are a FastAPI
app mounted on the ``@bentoml.service`` class: it keeps BentoML's serving, probes and ``/metrics``
while letting every error body name the record and field, and it measured more than twice the
throughput of ``@bentoml.api`` here. Configuration is by environment variable only, read when the
service starts (``serving.config``).
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Annotated

import bentoml
import mlflow
import sqlalchemy as sa
from fastapi import Depends
from fastapi.responses import ORJSONResponse as JSONResponse
from mlflow import MlflowClient
from sklearn import set_config

from serving import config
from serving.api import (
    Feedback,
    FeedbackBatch,
    PredictRequest,
    app,
    error_response,
    problem,
    too_many,
)
from serving.batching import PredictBatcher
from serving.contract import CHAMPION, champion, versions_by_gate
from serving.log_schema import DuplicateFeedbackError, PredictionRow, UnknownPredictionError
from serving.metrics import ServiceMetrics
from serving.model import ServedModel, load_from_dir, load_version
from serving.prediction_ids import new_prediction_id
from serving.prediction_log import PredictionLog
from serving.prediction_store import PredictionStore

logger = logging.getLogger("mlserve.serving")


@bentoml.service(
    name="mlserve",
    traffic={"timeout": 30},
    workers=1,
    # Per-request access logging and tracing cost about a fifth of throughput here; the
    # Prometheus metrics carry the same counts and latencies.
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(app, path="/")
class ModelService:
    """Serves the ``champion`` of one model and swaps to a new one without a restart."""

    def __init__(self) -> None:
        self.config = config.current()
        # Inputs are checked for NaN and infinity before they reach scikit-learn, and arrive as
        # an array in signature order whose names were checked already: skip both of its checks.
        set_config(assume_finite=True)
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self.metrics = ServiceMetrics()
        self.batcher = PredictBatcher()
        self.store = PredictionStore(self.config.predictions_url)
        self.store.create_schema()
        self.log = (
            PredictionLog(self.config.predictions_url, self.config.spool_path)
            if self.config.log_predictions
            else None
        )
        self._workdir = Path(tempfile.mkdtemp(prefix="mlserve-models-"))
        mlflow.set_tracking_uri(self.config.tracking_uri)
        mlflow.set_registry_uri(self.config.tracking_uri)
        self._client = MlflowClient(self.config.tracking_uri, self.config.tracking_uri)
        self.model: ServedModel = self._initial_model()
        self.metrics.served(self.model)
        self._stop = threading.Event()
        # Everything loaded so far (MLflow, scikit-learn, pandas, BentoML: about a million objects)
        # lives as long as the process. Frozen, the collector stops rescanning it, which removed
        # stop-the-world pauses of a few hundred milliseconds from the latency tail here.
        gc.collect()
        gc.freeze()
        if self.config.poll_seconds > 0:
            threading.Thread(target=self._poll_registry, name="champion-poll", daemon=True).start()

    def _initial_model(self) -> ServedModel:
        if self.config.bento_model:
            stored = bentoml.models.get(self.config.bento_model)
            return load_from_dir(Path(stored.path_of("mlflow_model")), dict(stored.info.metadata))
        name = self.config.model_name
        current = champion(self._client, name)
        if current is None:
            raise RuntimeError(f"model {name!r} has no {CHAMPION} version to serve yet")
        return load_version(self._client, name, str(current.version), self._workdir)

    def _poll_registry(self) -> None:
        """Follow the champion alias; a failed poll keeps the loaded model serving."""
        while not self._stop.wait(self.config.poll_seconds):
            try:
                name = self.model.name
                self.metrics.registered(name, versions_by_gate(self._client, name))
                current = champion(self._client, name)
                if current is not None and str(current.version) != self.model.version:
                    new = load_version(self._client, name, str(current.version), self._workdir)
                    self.model = new  # one reference swap: in-flight requests keep the old model
                    self.metrics.served(new)
                    logger.info("now serving %s v%s", new.name, new.version)
            except Exception as exc:
                logger.warning(
                    "champion poll failed, still serving v%s: %s", self.model.version, exc
                )

    @bentoml.on_startup
    async def start_log(self) -> None:
        """Start the log's writer now: a writer that cannot run stops start-up, not a request."""
        if self.log is not None:
            await self.log.start()

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        """Commit what the prediction log holds before the process exits."""
        self._stop.set()
        if self.log is not None:
            await self.log.close()

    def store_feedback(self, item: Feedback) -> tuple[int, str | None]:
        """Store one label: the HTTP status and, when refused, the problem."""
        model = self.model
        status, text = 201, model.check_label(item.ground_truth)
        if text:
            status = 422
        else:
            try:
                version, prediction = self.store.add_feedback(
                    model.name, item.prediction_id, item.ground_truth
                )
            except UnknownPredictionError:
                status, text = 404, f"no prediction of {model.name} with id {item.prediction_id!r}"
            except DuplicateFeedbackError:
                status, text = 409, "this prediction already has ground truth; labels are final"
            except sa.exc.SQLAlchemyError:
                logger.exception("feedback store failed")
                status, text = 503, "feedback store unavailable, retry later"
            else:
                regression = model.classes is None
                self.metrics.labelled(
                    model.name, version, prediction, item.ground_truth, regression=regression
                )
        self.metrics.feedback(model.name, status)
        return status, text


# Routes take the service from an async dependency: BentoML's class views resolve ``self``
# through a sync dependency, which costs a thread-pool hop on every request.
async def _service() -> ModelService:
    return bentoml.get_current_service()


Service = Annotated[ModelService, Depends(_service)]


@app.post("/predict")
async def predict(body: PredictRequest, service: Service) -> JSONResponse:
    """Predict every record with the current champion; each is logged before the answer."""
    started = time.perf_counter()
    refused = too_many("records", len(body.records))
    if refused is not None:
        service.metrics.rejected("predict", 422)
        return refused
    model = service.model  # one read: a hot swap must not predict with another signature
    matrix, problems = model.check(body.records)
    if matrix is None:
        service.metrics.rejected("predict", 422)
        return error_response(422, [p.as_dict() for p in problems])
    result = await service.batcher.predict(model, matrix)
    model, labels, probabilities = result.model, result.labels, result.probabilities
    now = time.time()
    rows = [
        PredictionRow(
            prediction_id=new_prediction_id(),
            created_at=now,
            model_name=model.name,
            model_version=model.version,
            features=record,
            prediction=label,
            probabilities=probabilities[i] if probabilities else None,
        )
        for i, (record, label) in enumerate(zip(body.records, labels, strict=True))
    ]
    if service.log is not None:
        try:
            await service.log.log(rows)
        except Exception:
            logger.exception("prediction log and spool both failed")
            service.metrics.rejected("predict", 503)
            return error_response(503, [problem("", "prediction log unavailable, retry later")])
    service.metrics.predicted(model, len(rows), time.perf_counter() - started)
    return JSONResponse(
        {
            "predictions": [
                {
                    "prediction_id": row.prediction_id,
                    "prediction": row.prediction,
                    **({"probabilities": row.probabilities} if row.probabilities else {}),
                    "model_name": row.model_name,
                    "model_version": row.model_version,
                }
                for row in rows
            ]
        }
    )


@app.post("/feedback")
def feedback(body: Feedback, service: Service) -> JSONResponse:
    """Attach ground truth to one logged prediction (201; 404 unknown; 409 labelled; 422; 503)."""
    status, text = service.store_feedback(body)
    if text:
        field = {404: "prediction_id", 409: "prediction_id", 422: "ground_truth"}.get(status, "")
        return error_response(status, [problem(field, text)])
    return JSONResponse({"prediction_id": body.prediction_id, "status": "stored"}, status_code=201)


@app.post("/feedback/batch")
def feedback_batch(body: FeedbackBatch, service: Service) -> JSONResponse:
    """Ground truth for many predictions; each item reports its own status."""
    refused = too_many("feedback", len(body.feedback))
    if refused is not None:
        return refused
    results = []
    for item in body.feedback:
        status, text = service.store_feedback(item)
        results.append({"prediction_id": item.prediction_id, "status": status, "problem": text})
    return JSONResponse({"results": results})


@app.get("/model")
def model_info(service: Service) -> JSONResponse:
    """The served model: name, version, alias, MLflow run, training metric, feature schema."""
    info = service.model.info()
    if service.log is not None:
        info["prediction_log_spooled"] = service.log.spooled()
    return JSONResponse(info)
