"""The HTTP contract: request bodies, the one error shape, and the app the service mounts.

Every error a client can cause is answered as ``{"errors": [{"record", "field", "problem"}]}``,
whichever layer found it (pydantic, the model's signature checks, the stores), so clients parse
one shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse as JSONResponse
from pydantic import BaseModel, Field

from serving import config
from serving.json_body import OrjsonRoute
from serving.limits import BodySizeLimit


class PredictRequest(BaseModel):
    """One or many records, each a mapping of feature name to value."""

    records: list[dict[str, Any]] = Field(min_length=1)


class Feedback(BaseModel):
    """The ground truth for one prediction."""

    prediction_id: str = Field(min_length=1, max_length=36)
    ground_truth: Any


class FeedbackBatch(BaseModel):
    """Ground truth for many predictions; each item gets its own status."""

    feedback: list[Feedback] = Field(min_length=1)


def problem(field: str, text: str, record: int | None = None) -> dict[str, Any]:
    """One entry of an error answer."""
    return {"record": record, "field": field, "problem": text}


def error_response(status: int, errors: list[dict[str, Any]]) -> JSONResponse:
    """The error answer every endpoint gives."""
    return JSONResponse({"errors": errors}, status_code=status)


def too_many(field: str, count: int) -> JSONResponse | None:
    """A 422 when a list is longer than the configured ``MLSERVE_MAX_RECORDS``."""
    limit = config.current().max_records
    if count <= limit:
        return None
    return error_response(422, [problem(field, f"at most {limit} items, got {count}")])


app = FastAPI(title="mlserve", description="Predictions, feedback and model info.")
app.router.route_class = OrjsonRoute
app.add_middleware(BodySizeLimit, max_bytes=lambda: config.current().max_body_bytes)


@app.exception_handler(RequestValidationError)
async def explain_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """Turn pydantic's errors into the same record/field/problem shape as the model checks."""
    errors = []
    status = 422
    for error in exc.errors():
        loc = [p for p in error.get("loc", ()) if p != "body"]
        if error.get("type") == "json_invalid":
            status = 400
            errors.append(problem("body", f"malformed JSON: {error['msg']}"))
            continue
        record = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        field = ".".join(str(p) for p in loc) or "body"
        errors.append(problem(field, error["msg"], record))
    return error_response(status, errors)
