"""The HTTP contract: request bodies, access by scope, the one error shape, and the app.

Every error a client can cause, whichever layer finds it, is answered in the shape of
``serving.http.errors``; the handlers below turn FastAPI's and Starlette's own refusals into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse as JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from serving import config
from serving.http.auth import HEADER, presented_key
from serving.http.errors import ApiError, error_response, problem
from serving.http.json_body import OrjsonRoute
from serving.http.limits import BodySizeLimit, Deadline

logger = logging.getLogger("mlserve.serving")

PREDICTION_ID = r"^[0-9a-f]{32}$"


class Body(BaseModel):
    """A request body: a key the contract does not name is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class PredictRequest(Body):
    """One or many records, each a mapping of feature name to value."""

    records: list[dict[str, Any]] = Field(min_length=1)


class Feedback(Body):
    """The ground truth for one prediction."""

    prediction_id: str = Field(pattern=PREDICTION_ID)
    ground_truth: Any


class FeedbackBatch(Body):
    """Ground truth for many predictions; each item gets its own status."""

    feedback: list[Feedback] = Field(min_length=1)


def too_many(field: str, count: int) -> None:
    """Refuse (422) a list longer than the configured ``MLSERVE_MAX_RECORDS``."""
    limit = config.current().max_records
    if count > limit:
        raise ApiError(422, [problem(field, f"at most {limit} items, got {count}")])


def require(scope: str) -> Callable[[Request], None]:
    """A route dependency admitting only requests whose key grants ``scope`` (or open scopes)."""

    def check(request: Request) -> None:
        allowed = config.current().keys.allows(scope, presented_key(request.headers.get(HEADER)))
        if allowed is None:
            raise ApiError(
                401, [problem(HEADER, f"an API key with the {scope!r} scope is required")]
            )
        if not allowed:
            raise ApiError(403, [problem(HEADER, f"this API key lacks the {scope!r} scope")])

    return check


# The document and the docs page are ``serving.http.openapi``'s, written from the served model.
app = FastAPI(title="mlserve", docs_url=None, redoc_url=None)
app.router.route_class = OrjsonRoute
app.add_middleware(Deadline, seconds=lambda: config.current().request_timeout)
app.add_middleware(BodySizeLimit, max_bytes=lambda: config.current().max_body_bytes)


@app.exception_handler(ApiError)
async def explain_api_error(_request: Request, exc: ApiError) -> JSONResponse:
    """Errors raised below the routes (keys, content type, limits)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.errors, headers)


@app.exception_handler(RequestValidationError)
async def explain_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Turn pydantic's errors into the same record/field/problem shape as the model checks."""
    errors = []
    status = 422
    for error in exc.errors():
        loc = [p for p in error.get("loc", ()) if p != "body"]
        if error.get("type") == "json_invalid":
            status = 400
            reason = error.get("ctx", {}).get("error") or error["msg"]
            errors.append(problem("body", f"malformed JSON: {reason}"))
            continue
        record = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        field = ".".join(str(p) for p in loc) or "body"
        text = error["msg"]
        if error.get("type") == "extra_forbidden":
            text = "unexpected field: the contract has no such key"
        errors.append(problem(field, text, record))
    return error_response(status, errors)


@app.exception_handler(HTTPException)
async def explain_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing and body-reading errors (404, 405, an unreadable body) in the common shape."""
    if exc.status_code == 404:
        error = problem("path", f"no endpoint {request.url.path}")
    elif exc.status_code == 405:
        error = problem("method", f"{request.method} is not allowed on {request.url.path}")
    else:
        error = problem("body", f"unreadable body: {exc.detail}")
    return error_response(exc.status_code, [error], exc.headers)


@app.exception_handler(Exception)
async def explain_fault(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours: the detail goes to the log, the client gets a short message only."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, [problem("", "internal error; the service log has the detail")])
