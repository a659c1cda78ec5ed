"""The OpenAPI document, written from the served model rather than from the route signatures.

FastAPI would document a record as ``{"additionalProp1": {}}`` and every error as its own
``detail`` shape; a client generated from that could not send one valid request. This document
names each feature with its type, nullability and an example record from the training data,
types the prediction and the feedback label by the model's task (its classes, or a number),
lists every status each route really answers with its body, and declares the API-key scheme
only where a key is required. It is rebuilt whenever the served version changes, so after a hot
swap to a version with other features the document and the docs page show the new signature.
``AppDocs`` makes BentoML's own document and index page show it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from serving import config
from serving.http.auth import SCOPES
from serving.http.schemas import REF, component_schemas, number_schema
from serving.model.fields import LABEL_LIMIT
from serving.model.served import ServedModel

# What each status means, whatever the route.
_MEANING = {
    200: "Success.",
    201: "Stored.",
    400: "The body is not readable JSON.",
    401: "No API key, or an unknown one (send `Authorization: Bearer KEY`).",
    403: "The API key lacks this route's scope.",
    404: "No prediction of this model with that id.",
    408: "The body did not arrive in time.",
    409: "The prediction already has another label (labels are final).",
    413: "The body is larger than the limit.",
    415: "The body is not declared as JSON.",
    422: "The body does not fit the contract; each error names the record and field.",
    500: "A fault of the service; the message is short, the service log has the detail.",
    503: "A store is unavailable; nothing was kept, retry later.",
    504: "No answer in time; retry later.",
}
_BODY_ERRORS = (400, 408, 413, 415, 422)


def document(model: ServedModel) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the service serving ``model``."""
    keys = config.current().keys
    classes = model.classes
    label: dict[str, Any] = (
        {"enum": classes}
        if classes is not None
        else number_schema("a finite number, |value| <= 2^511", LABEL_LIMIT)
    )
    routes = [
        ("/predict", "post", "predict", "PredictRequest", {200: "Predictions"}, (503,)),
        (
            "/feedback",
            "post",
            "feedback",
            "Feedback",
            {201: "FeedbackStored", 200: "FeedbackStored"},
            (404, 409, 503),
        ),
        ("/feedback/batch", "post", "feedback", "FeedbackBatch", {200: "FeedbackResults"}, (503,)),
        ("/model", "get", "predict", None, {200: "ModelInfo"}, ()),
        ("/admin/reload", "post", "admin", None, {200: "Reloaded"}, (503,)),
    ]
    paths: dict[str, Any] = {}
    for path, method, scope, body, success, failures in routes:
        statuses = [*failures, 500, 504]
        if body is not None:
            statuses += _BODY_ERRORS
        if scope not in keys.open_scopes:
            statuses += [401, 403]
        responses = {
            str(status): _response(status, schema) for status, schema in success.items()
        } | {str(status): _response(status, "Errors") for status in sorted(set(statuses))}
        operation: dict[str, Any] = {
            "operationId": path.strip("/").replace("/", "_"),
            "summary": _SUMMARIES[path],
            "responses": responses,
            "security": [] if scope in keys.open_scopes else [{"apiKey": []}],
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF + body}}},
            }
        paths[path] = {method: operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlserve: {model.name} v{model.version}",
            "version": model.version,
            "description": _description(model, keys.open_scopes),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"An API key with the route's scope ({', '.join(SCOPES)}).",
                }
            },
            "schemas": component_schemas(model, label),
        },
    }


_SUMMARIES = {
    "/predict": "Predict records with the champion; each is logged before the answer",
    "/feedback": "Ground truth for one prediction (the same label again answers 200)",
    "/feedback/batch": "Ground truth for many predictions, each with its own status",
    "/model": "The served model: version, metric, features",
    "/admin/reload": "Follow the registry's champion now (after a promotion or rollback)",
}


def _description(model: ServedModel, open_scopes: frozenset[str]) -> str:
    task = "classifier" if model.classes is not None else "regressor"
    metric = f"; trained {model.metric} {model.score:.4g}" if model.score is not None else ""
    keyed = [s for s in SCOPES if s not in open_scopes]
    access = (
        f"Routes needing the {', '.join(keyed)} scope(s) take `Authorization: Bearer KEY`."
        if keyed
        else "No route needs a key."
    )
    return (
        f"Serves `{model.name}` version {model.version} (the `champion`), a {task} over "
        f"{len(model.features)} features{metric}. {access} Every error answers "
        '`{"errors": [{"record", "field", "problem"}]}`.'
    )


def _response(status: int, schema: str) -> dict[str, Any]:
    return {
        "description": _MEANING[status],
        "content": {"application/json": {"schema": {"$ref": REF + schema}}},
    }


def install_openapi(app: FastAPI, served: Callable[[], ServedModel]) -> None:
    """Serve ``document`` at ``/openapi.json`` and a docs page titled with the model at ``/docs``.

    The docs page loads Swagger UI from BentoML's bundled copy, so it works with no internet.
    """
    cache: dict[tuple[str, str], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        model = served()
        key = (model.name, model.version)
        if key not in cache:
            cache.clear()
            cache[key] = document(model)
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        model = served()
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"mlserve: {model.name} v{model.version}",
            swagger_js_url="/static_content/swagger-ui-bundle.js",
            swagger_css_url="/static_content/swagger-ui.css",
            swagger_favicon_url="/static_content/favicon-light-32x32.png",
        )


class AppDocs:
    """Show this document where BentoML shows its own: ``/docs.json`` and the index page.

    BentoML's routes come before a mounted app's, and its document is made from route
    signatures; rewriting the two paths before its router sees them is the one way, through its
    public middleware hook, to have a single truthful document.
    """

    _PATHS = {"/docs.json": "/openapi.json", "/": "/docs"}

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Rewrite the two documentation paths; pass everything else as it is."""
        if scope["type"] == "http" and scope["path"] in self._PATHS:
            path = self._PATHS[scope["path"]]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
