"""The BentoML service: predictions from the current champion, a durable log, and feedback.

The HTTP routes are a FastAPI app mounted on the ``@bentoml.service`` class: it keeps BentoML's
serving, probes and ``/metrics`` while letting every error body name the record and field, and it
measured more than twice the throughput of ``@bentoml.api`` here (shared/PERFORMANCE.md).
Configuration is by environment variable only (see ``serving.config``).
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import bentoml
import mlflow
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse as JSONResponse
from mlflow import MlflowClient
from pydantic import BaseModel, Field
from sklearn import set_config

from mlserve_assets.prediction_store import (
    DuplicateFeedbackError,
    PredictionRow,
    PredictionStore,
    UnknownPredictionError,
)
from serving.batching import PredictBatcher
from serving.config import ServingConfig
from serving.json_body import OrjsonRoute
from serving.limits import BodySizeLimit
from serving.metrics import ServiceMetrics
from serving.model import (
    ServedModel,
    champion_version,
    load_from_dir,
    load_version,
    versions_by_gate,
)
from serving.prediction_ids import new_prediction_id
from serving.prediction_log import PredictionLog

logger = logging.getLogger("mlserve.serving")
config = ServingConfig.from_env()

# Inputs are checked for NaN and infinity before they reach scikit-learn: skip its second pass.
set_config(assume_finite=True)


class PredictRequest(BaseModel):
    """One or many records, each a mapping of feature name to value."""

    records: list[dict[str, Any]] = Field(min_length=1, max_length=config.max_records)


class Feedback(BaseModel):
    """The ground truth for one prediction."""

    prediction_id: str = Field(min_length=1, max_length=36)
    ground_truth: Any


class FeedbackBatch(BaseModel):
    """Ground truth for many predictions; each item gets its own status."""

    feedback: list[Feedback] = Field(min_length=1, max_length=config.max_records)


def _errors(status: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status)


app = FastAPI(title="mlserve", description="Predictions, feedback and model info.")
app.router.route_class = OrjsonRoute
app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)


@app.exception_handler(RequestValidationError)
async def explain_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Turn pydantic's errors into the same record/field/problem shape as the model checks."""
    errors = []
    status = 422
    for error in exc.errors():
        loc = [p for p in error.get("loc", ()) if p != "body"]
        if error.get("type") == "json_invalid":
            status = 400
            errors.append(
                {"record": None, "field": "body", "problem": f"malformed JSON: {error['msg']}"}
            )
            continue
        record = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        field = ".".join(str(p) for p in loc) or "body"
        errors.append({"record": record, "field": field, "problem": error["msg"]})
    return _errors(status, errors)


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
        self.metrics = ServiceMetrics()
        self.batcher = PredictBatcher()
        self.store = PredictionStore(config.predictions_url)
        self.store.create_schema()
        self.log = (
            PredictionLog(config.predictions_url, config.spool_path)
            if config.log_predictions
            else None
        )
        self._workdir = Path(tempfile.mkdtemp(prefix="mlserve-models-"))
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.tracking_uri)
        self._client = MlflowClient(config.tracking_uri, config.tracking_uri)
        self.model: ServedModel = self._initial_model()
        self.metrics.served(self.model)
        self._stop = threading.Event()
        # Everything loaded so far (MLflow, scikit-learn, pandas, BentoML: about a million objects)
        # lives as long as the process. Frozen, the collector stops rescanning it, which removed
        # stop-the-world pauses of a few hundred milliseconds from the latency tail here.
        gc.collect()
        gc.freeze()
        if config.poll_seconds > 0:
            threading.Thread(target=self._poll_registry, name="champion-poll", daemon=True).start()

    def _initial_model(self) -> ServedModel:
        if config.bento_model:
            stored = bentoml.models.get(config.bento_model)
            return load_from_dir(Path(stored.path_of("mlflow_model")), dict(stored.info.metadata))
        version = champion_version(self._client, config.model_name)
        return load_version(self._client, config.model_name, version, self._workdir)

    def _poll_registry(self) -> None:
        """Follow the champion alias; a failed poll keeps the loaded model serving."""
        while not self._stop.wait(config.poll_seconds):
            try:
                self.metrics.registered(
                    self.model.name, versions_by_gate(self._client, self.model.name)
                )
                version = champion_version(self._client, self.model.name)
                if version != self.model.version:
                    new = load_version(self._client, self.model.name, version, self._workdir)
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

    async def predict(self, body: PredictRequest) -> JSONResponse:
        """Predict every record with the current champion and log each before answering."""
        started = time.perf_counter()
        model = self.model
        matrix, problems = model.check(body.records)
        if matrix is None:
            self.metrics.rejected("predict", 422)
            return _errors(422, [p.as_dict() for p in problems])
        result = await self.batcher.predict(model, matrix)
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
        if self.log is not None:
            try:
                await self.log.log(rows)
            except Exception as exc:
                self.metrics.rejected("predict", 503)
                problem = f"prediction log unavailable: {exc}"
                return _errors(503, [{"record": None, "field": "", "problem": problem}])
        self.metrics.predicted(model, len(rows), time.perf_counter() - started)
        answer = [
            {
                "prediction_id": row.prediction_id,
                "prediction": row.prediction,
                **({"probabilities": row.probabilities} if row.probabilities else {}),
                "model_name": row.model_name,
                "model_version": row.model_version,
            }
            for row in rows
        ]
        return JSONResponse({"predictions": answer})

    def _store_feedback(self, item: Feedback) -> tuple[int, str | None]:
        problem = self.model.check_label(item.ground_truth)
        if problem:
            return 422, problem
        try:
            version, prediction = self.store.add_feedback(item.prediction_id, item.ground_truth)
        except UnknownPredictionError:
            return 404, f"no prediction with id {item.prediction_id!r}"
        except DuplicateFeedbackError:
            return 409, "this prediction already has ground truth; labels are final"
        self.metrics.labelled(
            self.model.name,
            version,
            prediction,
            item.ground_truth,
            regression=self.model.classes is None,
        )
        return 201, None

    def _feedback_or_retry(self, item: Feedback) -> tuple[int, str | None]:
        try:
            status, problem = self._store_feedback(item)
        except sa.exc.SQLAlchemyError as exc:
            status, problem = (
                503,
                f"feedback store unavailable, retry later: {exc.__class__.__name__}",
            )
        self.metrics.feedback(self.model.name, status)
        return status, problem

    def feedback(self, body: Feedback) -> JSONResponse:
        """Attach ground truth to one logged prediction (201; 404 unknown; 409 labelled; 422)."""
        status, problem = self._feedback_or_retry(body)
        if problem:
            field = "prediction_id" if status in (404, 409) else "ground_truth"
            return _errors(status, [{"record": None, "field": field, "problem": problem}])
        return JSONResponse(
            {"prediction_id": body.prediction_id, "status": "stored"}, status_code=201
        )

    def feedback_batch(self, body: FeedbackBatch) -> JSONResponse:
        """Ground truth for many predictions; each item reports its own status."""
        results = []
        for item in body.feedback:
            status, problem = self._feedback_or_retry(item)
            results.append(
                {"prediction_id": item.prediction_id, "status": status, "problem": problem}
            )
        return JSONResponse({"results": results})

    def model_info(self) -> JSONResponse:
        """The served model: name, version, alias, MLflow run, training metric, feature schema."""
        info = self.model.info()
        if self.log is not None:
            info["prediction_log_spooled"] = self.log.spooled()
        return JSONResponse(info)


# Routes are plain functions handed the service by an async dependency: BentoML's class views
# resolve ``self`` through a sync dependency, which costs a thread-pool hop on every request.
async def _service() -> ModelService:
    return bentoml.get_current_service()


Service = Annotated[ModelService, Depends(_service)]


@app.post("/predict")
async def predict(body: PredictRequest, service: Service) -> JSONResponse:
    """Predict every record with the current champion; each is logged before the answer."""
    return await service.predict(body)


@app.post("/feedback")
def feedback(body: Feedback, service: Service) -> JSONResponse:
    """Attach ground truth to one logged prediction (201; 404 unknown; 409 labelled; 422)."""
    return service.feedback(body)


@app.post("/feedback/batch")
def feedback_batch(body: FeedbackBatch, service: Service) -> JSONResponse:
    """Ground truth for many predictions; each item reports its own status."""
    return service.feedback_batch(body)


@app.get("/model")
def model_info(service: Service) -> JSONResponse:
    """The served model: name, version, alias, MLflow run, training metric, feature schema."""
    return service.model_info()
