"""The BentoML service: predictions from the current champion, a durable log, and feedback.

``ModelService`` holds what lives as long as the process (its configuration, the model, the log,
the stores) and follows the registry's ``champion``; each endpoint is one route below it, declared
once with its scope, answer and failures (``serving.http.app.route``). The routes are a FastAPI app
mounted on the ``@bentoml.service`` class: it keeps BentoML's serving, probes and ``/metrics``
while letting every error body name the record and field, and it measured more than twice the
throughput of ``@bentoml.api`` here. Configuration is by environment variable only, read once when
the service starts (``serving.config``) and reached per request through the service. Access is by
API key and scope (``serving.http.auth``); the OpenAPI document is generated from the routes and
their models and typed by the served model (``serving.http.openapi``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path
from typing import Annotated

import bentoml
from fastapi import Depends, Request
from fastapi.responses import ORJSONResponse as JSONResponse

from serving import config
from serving.feedback_intake import RETRY, FeedbackIntake
from serving.following import ChampionFollower
from serving.http.app import build_app, current_service, route, running_service, too_many
from serving.http.auth import HEADER
from serving.http.bodies import (
    Feedback,
    FeedbackBatch,
    FeedbackResults,
    FeedbackStored,
    ModelInfo,
    Predictions,
    PredictRequest,
    Reloaded,
)
from serving.http.errors import CommonShape, error_response, problem
from serving.http.json_body import orjson_body
from serving.http.openapi import AppDocs, install_openapi
from serving.http.rejections import CountRejections
from serving.log.client import PredictionLog
from serving.model.batching import PredictBatcher
from serving.model.loading import load_from_dir
from serving.model.served import ServedModel
from serving.prometheus import ServiceMetrics
from serving.registry import connect, drift_report, gate_summary
from serving.shadow import Shadow
from serving.store.notices import MoveListener
from serving.store.predictions import PredictionStore

logger = logging.getLogger("mlserve.serving")

# How much later than MLSERVE_REQUEST_TIMEOUT BentoML's own timeout fires.
BACKSTOP_SECONDS = 5


app = build_app()


@bentoml.service(
    name="mlserve",
    # A backstop: serving.http.limits.Deadline answers first (MLSERVE_REQUEST_TIMEOUT, in the common
    # error shape); BentoML's own timeout answers in its shape and must not fire before it. Nor
    # much later: BentoML 1.4 leaves each request's timer scheduled until it expires, holding the
    # request's tracing context (~5 KB), so the memory held is timeout x request rate (at 300 s
    # the service grew 134 MB over a 300 s soak at 200 req/s, measured).
    traffic={"timeout": config.request_timeout() + BACKSTOP_SECONDS},
    workers=1,
    # Per-request access logging and tracing cost about a fifth of throughput here; the
    # Prometheus metrics carry the same counts and latencies.
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(app, path="/")
class ModelService:
    """Serves the ``champion`` of one model and swaps to a new one without a restart."""

    def __init__(self) -> None:
        self.config = config.ServingConfig.from_env()
        self.config.keys.announce(logger)
        self.metrics = ServiceMetrics()
        self.batcher = PredictBatcher()
        self.store = PredictionStore(self.config.predictions_url)
        self.store.create_schema()
        self.log = (
            PredictionLog(self.config.predictions_url, self.config.spool_path)
            if self.config.log_predictions
            else None
        )
        self.feedback = FeedbackIntake(self.store, self.metrics, self.config, self.log)
        self._client = connect(self.config.tracking_uri)
        self.follower = ChampionFollower(self._client, self.store, self.metrics, self.config)
        self.model: ServedModel = self._initial_model()
        self.metrics.served(self.model)
        # A shadow's answers sit beside the logged ones: none without the log.
        fraction = self.config.shadow_fraction
        self.shadow = None if self.log is None else Shadow(self.store, self.metrics, fraction)
        self._stop = threading.Event()
        # Everything loaded so far (MLflow, scikit-learn, pandas, BentoML: about a million objects)
        # lives as long as the process. Frozen, the collector stops rescanning it, which removed
        # stop-the-world pauses of a few hundred milliseconds from the latency tail here.
        gc.collect()
        gc.freeze()
        self._moves = MoveListener(self.store.engine, self.model.name)  # replicas swap together
        if self.config.poll_seconds > 0:
            threading.Thread(target=self._poll_registry, name="champion-poll", daemon=True).start()

    def _initial_model(self) -> ServedModel:
        if self.config.bento_model:
            stored, c = bentoml.models.get(self.config.bento_model), self.config
            folder, meta = Path(stored.path_of("mlflow_model")), dict(stored.info.metadata)
            return load_from_dir(folder, meta, c.trusted_types, c.runtime, c.onnx_threads)
        return self.follower.initial(self.config.model_name)

    def _poll_registry(self) -> None:
        """Follow the aliases now and every poll; a failed poll (no registry) keeps serving."""
        while True:
            if self.log is not None:  # the spool's depth, for the alert on a long outage
                self.metrics.log_backlog(self.log.spooled(), self.log.quarantined())
            try:
                self.follow_champion()
            except Exception as exc:
                logger.warning(
                    "champion poll failed, still serving v%s: %s", self.model.version, exc
                )
            if self._moves.sleep(self.config.poll_seconds, self._stop):
                self._moves.close()
                return

    def follow_champion(self) -> bool:
        """Serve the registry's vetted champion; True if that changed the served version.

        And score its vetted challenger in shadow, if there is one.
        """
        name = self.model.name
        self.metrics.registered(name, gate_summary(self._client, name))
        self.metrics.drift(name, drift_report(self._client, name))
        new = self.follower.follow(self.model)
        if self.shadow is not None:
            served = (new or self.model).version
            self.shadow.model = self.follower.challenger(name, self.shadow.model, served)
        if new is None:
            return False
        self.model = new  # one reference swap: in-flight requests keep the old model
        self.metrics.served(new)
        logger.info("now serving %s v%s", new.name, new.version)
        return True

    def __is_ready__(self) -> bool:
        """Ready while an answered prediction can be logged: to the database, else the spool.

        BentoML's ``/readyz`` asks this; a load balancer then stops sending traffic that could
        only be refused with 503, and sends it again once either store takes writes.
        """
        return self.log is None or self.log.writable(self.store)

    @bentoml.on_startup
    async def start_log(self) -> None:
        """Start the log's writer now: a writer that cannot run stops start-up, not a request."""
        if self.log is not None:
            await self.log.start()

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        """Commit what the prediction log holds before the process exits."""
        self._stop.set()
        if self.shadow is not None:  # scoring what is queued takes a thread, not the event loop
            await asyncio.to_thread(self.shadow.close)
        if self.log is not None:
            await self.log.close()


# Routes take the service from an async dependency: BentoML's class views resolve ``self``
# through a sync dependency, which costs a thread-pool hop on every request.
Service = Annotated[ModelService, Depends(current_service)]


@app.post("/predict", **route("predict", Predictions, fails=(503,)))
async def predict(body: PredictRequest, service: Service, request: Request) -> JSONResponse:
    """Predict records with the champion; each is logged before the answer."""
    started = time.perf_counter()
    too_many("records", len(body.records), service.config.max_records)
    model = service.model  # one read: a hot swap must not predict with another signature
    matrix, problems = model.check(body.records)
    if matrix is None:
        return error_response(422, [p.as_dict() for p in problems])
    result = await service.batcher.predict(model, matrix)
    if result.unscorable:
        text = "the model's output for this record is not a number: its values are too far "
        text += "outside the data the model was trained on"
        return error_response(422, [problem("", text, i) for i in result.unscorable])
    model, batch = result.model, result.batch(body.records)
    if service.log is not None:
        try:
            await service.log.log(batch, orjson_body(request))
        except Exception:
            logger.exception("prediction log and spool both failed")
            return error_response(503, [problem("", "prediction log unavailable, retry later")])
        if service.shadow is not None:
            service.shadow.offer(batch)
    service.metrics.predicted(model, len(batch.predictions), time.perf_counter() - started)
    named = {"model_name": batch.model_name, "model_version": batch.model_version}
    scores = batch.probabilities or [None] * len(batch.predictions)
    return JSONResponse(
        {
            "predictions": [
                {
                    "prediction_id": pid,
                    "prediction": label,
                    **({"probabilities": score} if score else {}),
                    **named,
                }
                for pid, label, score in zip(
                    batch.prediction_ids, batch.predictions, scores, strict=True
                )
            ]
        }
    )


@app.post(
    "/feedback",
    **route("feedback", FeedbackStored, status=201, also=(200,), fails=(404, 409, 429, 503)),
)
def feedback(body: Feedback, service: Service, request: Request) -> JSONResponse:
    """Ground truth for one prediction (the same label again answers 200)."""
    model = service.model  # one read: a hot swap must not check with one model, store with another
    service.feedback.check(model, [body], "ground_truth")
    sender = service.feedback.admit(service.config.keys, request.headers.get(HEADER), 1)
    ((status, text),) = service.feedback.accept(model, [body], sender)
    if text:
        field = "prediction_id" if status < 500 else ""
        return error_response(status, [problem(field, text)], RETRY if status == 503 else None)
    state = "stored" if status == 201 else "already stored"
    return JSONResponse({"prediction_id": body.prediction_id, "status": state}, status_code=status)


@app.post("/feedback/batch", **route("feedback", FeedbackResults, fails=(429, 503)))
def feedback_batch(body: FeedbackBatch, service: Service, request: Request) -> JSONResponse:
    """Ground truth for many predictions, each with its own status.

    If the store fails, or some predictions are still in the spool, the answer is a 503 naming
    the items not stored: a retry of the whole batch is safe, items already stored answer 200.
    """
    too_many("feedback", len(body.feedback), service.config.max_records)
    model = service.model
    service.feedback.check(model, items := body.feedback, "feedback")
    sender = service.feedback.admit(service.config.keys, request.headers.get(HEADER), len(items))
    answers = service.feedback.accept(model, items, sender)
    failed = [problem("prediction_id", t, i) for i, (code, t) in enumerate(answers) if code == 503]
    if failed:
        return error_response(503, failed, RETRY)
    results = [
        {"prediction_id": item.prediction_id, "status": status, "problem": text}
        for item, (status, text) in zip(items, answers, strict=True)
    ]
    return JSONResponse({"results": results})


@app.get("/model", **route("predict", ModelInfo))
def model_info(service: Service) -> JSONResponse:
    """The served model: version, metric, features."""
    info = service.model.info()
    if service.log is not None:
        info["prediction_log_spooled"] = service.log.spooled()
    if service.shadow is not None and (challenger := service.shadow.model) is not None:
        info["shadow_version"] = challenger.version
    return JSONResponse(info)


@app.post("/admin/reload", **route("admin", Reloaded, fails=(503,)))
def reload(service: Service) -> JSONResponse:
    """Follow the registry's champion now (after a promotion or rollback)."""
    try:
        changed = service.follow_champion()
    except Exception:
        logger.exception("reload from the registry failed")
        return error_response(503, [problem("", "model registry unavailable, retry later")])
    model, refused = service.model, service.follower.refusal(service.model.name)
    body = {"name": model.name, "version": model.version, "changed": changed, "refused": refused}
    return JSONResponse(body)


install_openapi(app, bentoml.get_current_service)
# Around BentoML's whole app (the first added is outermost): every answer is counted, BentoML's
# own 404s take the common shape, and its documentation paths show this service's document.
ModelService.add_asgi_middleware(
    CountRejections,
    count=lambda: None if (running := running_service()) is None else running.metrics.rejected,
    endpoints=lambda: {route.path for route in app.routes},
)
ModelService.add_asgi_middleware(CommonShape)
ModelService.add_asgi_middleware(AppDocs)
