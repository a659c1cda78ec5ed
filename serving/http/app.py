"""The app the routes hang on: access by scope, the one error shape, the limits.

Every error a client can cause, whichever layer finds it, is answered in the shape of
``serving.http.errors``; the handlers below turn FastAPI's and Starlette's own refusals into it.
Per-request settings (keys, limits) are read from the running service's configuration, which it
reads once when it starts; nothing here holds configuration of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import bentoml
from bentoml.exceptions import BentoMLException
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse as JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from serving.http.auth import HEADER, presented_key
from serving.http.bodies import Errors
from serving.http.errors import ApiError, error_response, problem
from serving.http.json_body import OrjsonRoute
from serving.http.limits import BodySizeLimit, Deadline

logger = logging.getLogger("mlserve.serving")

SCOPE = "x-mlserve-scope"
"""The operation's key in the OpenAPI document naming the scope a route requires."""


def running_service() -> Any | None:
    """The service of this process, once BentoML has made it (None before)."""
    try:
        return bentoml.get_current_service()
    except BentoMLException:
        return None


async def current_service() -> Any:
    """The running service (async: BentoML's own sync lookup costs a thread-pool hop)."""
    return bentoml.get_current_service()


def too_many(field: str, count: int, limit: int) -> None:
    """Refuse (422) a list longer than ``limit`` (``MLSERVE_MAX_RECORDS``)."""
    if count > limit:
        raise ApiError(422, [problem(field, f"at most {limit} items, got {count}")])


def require(scope: str) -> Callable[..., None]:
    """A route dependency admitting only requests whose key grants ``scope`` (or open scopes)."""

    async def check(request: Request, service: Annotated[Any, Depends(current_service)]) -> None:
        presented = presented_key(request.headers.get(HEADER))
        allowed = service.config.keys.allows(scope, presented)
        if allowed is None:
            raise ApiError(
                401, [problem(HEADER, f"an API key with the {scope!r} scope is required")]
            )
        if not allowed:
            raise ApiError(403, [problem(HEADER, f"this API key lacks the {scope!r} scope")])

    return check


def route(
    scope: str,
    answer: type[BaseModel],
    *,
    status: int = 200,
    also: tuple[int, ...] = (),
    fails: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A route's whole contract, as FastAPI's route arguments: declared once, beside the route.

    The scope it requires (checked, and named in the document), its answer's model and status
    (and ``also`` the statuses answered with the same model), and the failures particular to
    it; the failures every route shares (keys, body, faults) are added to the document by
    ``serving.http.openapi``.
    """
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": answer} for code in (status, *also)
    }
    responses |= {code: {"model": Errors} for code in fails}
    return {
        "dependencies": [Depends(require(scope))],
        "status_code": status,
        "response_model": None,
        "responses": responses,
        "openapi_extra": {SCOPE: scope},
    }


def build_app() -> FastAPI:
    """The FastAPI app: orjson bodies, the limits, and every refusal in the one error shape.

    The document and the docs page are ``serving.http.openapi``'s.
    """
    app = FastAPI(title="mlserve", docs_url=None, redoc_url=None)
    app.router.route_class = OrjsonRoute
    app.add_middleware(Deadline, seconds=lambda: running_service().config.request_timeout)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: running_service().config.max_body_bytes)
    app.add_exception_handler(ApiError, _explain_api_error)
    app.add_exception_handler(RequestValidationError, _explain_validation_error)
    app.add_exception_handler(HTTPException, _explain_http_error)
    app.add_exception_handler(Exception, _explain_fault)
    return app


async def _explain_api_error(_request: Request, exc: ApiError) -> JSONResponse:
    """Errors raised below the routes (keys, content type, limits)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return error_response(exc.status, exc.errors, {**headers, **exc.headers})


async def _explain_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
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


async def _explain_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing and body-reading errors (404, 405, an unreadable body) in the common shape."""
    if exc.status_code == 404:
        error = problem("path", f"no endpoint {request.url.path}")
    elif exc.status_code == 405:
        error = problem("method", f"{request.method} is not allowed on {request.url.path}")
    else:
        error = problem("body", f"unreadable body: {exc.detail}")
    return error_response(exc.status_code, [error], exc.headers)


async def _explain_fault(request: Request, exc: Exception) -> JSONResponse:
    """A fault of ours: the detail goes to the log, the client gets a short message only."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, [problem("", "internal error; the service log has the detail")])
