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
from serving.api import PREDICTION_ID
from serving.auth import SCOPES
from serving.model import LABEL_LIMIT, NUMBER_LIMIT, ServedModel

_REF = "#/components/schemas/"

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
        else _number("a finite number, |value| <= 2^511", LABEL_LIMIT)
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
                "content": {"application/json": {"schema": {"$ref": _REF + body}}},
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
            "schemas": _schemas(model, label),
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
        "content": {"application/json": {"schema": {"$ref": _REF + schema}}},
    }


def _number(description: str, limit: int) -> dict[str, Any]:
    return {"type": "number", "minimum": -limit, "maximum": limit, "description": description}


def _feature(kind: str, required: bool) -> dict[str, Any]:
    if kind in ("long", "integer"):
        bound = 1 << (63 if kind == "long" else 31)
        schema: dict[str, Any] = {"type": "integer", "minimum": -bound, "maximum": bound - 1}
    elif kind in ("double", "float"):
        schema = _number("a finite number, |value| <= 2^1023", NUMBER_LIMIT)
    else:
        schema = {"type": {"string": "string", "boolean": "boolean"}[kind]}
    if not required:
        schema["type"] = [schema["type"], "null"]
    return schema


def _schemas(model: ServedModel, label: dict[str, Any]) -> dict[str, Any]:
    max_items = config.current().max_records
    record = {
        "type": "object",
        "description": "One record: every feature of the model's signature, nothing else.",
        "properties": {f.name: _feature(f.type, f.required) for f in model.features},
        "required": [f.name for f in model.features],
        "additionalProperties": False,
    }
    if model.example is not None:
        record["examples"] = [model.example]
    prediction = {
        "type": "object",
        "properties": {
            "prediction_id": {"type": "string", "pattern": PREDICTION_ID},
            "prediction": label,
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
        },
        "required": ["prediction_id", "prediction", "model_name", "model_version"],
    }
    if model.classes is not None:
        prediction["properties"]["probabilities"] = {
            "type": "object",
            "properties": {str(c): {"type": "number"} for c in model.classes},
        }
    feedback = {
        "type": "object",
        "properties": {
            "prediction_id": {"type": "string", "pattern": PREDICTION_ID},
            "ground_truth": label,
        },
        "required": ["prediction_id", "ground_truth"],
        "additionalProperties": False,
    }
    return {
        "Record": record,
        "PredictRequest": _object(
            {"records": _list(_REF + "Record", max_items)}, closed=True, required=["records"]
        ),
        "Prediction": prediction,
        "Predictions": _object({"predictions": _list(_REF + "Prediction")}),
        "Feedback": feedback,
        "FeedbackBatch": _object(
            {"feedback": _list(_REF + "Feedback", max_items)}, closed=True, required=["feedback"]
        ),
        "FeedbackStored": _object(
            {
                "prediction_id": {"type": "string"},
                "status": {"enum": ["stored", "already stored"]},
            }
        ),
        "FeedbackResults": _object(
            {
                "results": {
                    "type": "array",
                    "items": _object(
                        {
                            "prediction_id": {"type": "string"},
                            "status": {"enum": [200, 201, 404, 409]},
                            "problem": {"type": ["string", "null"]},
                        }
                    ),
                }
            }
        ),
        "ModelInfo": _object(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "alias": {"type": "string"},
                "mlflow_run_id": {"type": "string"},
                "task": {"enum": ["classification", "regression"]},
                "classes": {"type": ["array", "null"]},
                "features": {"type": "array"},
                "training_metric": {"type": "object"},
                "prediction_log_spooled": {"type": "integer"},
            },
            required=["name", "version", "features"],
        ),
        "Reloaded": _object(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "changed": {"type": "boolean"},
            }
        ),
        "Errors": _object(
            {
                "errors": {
                    "type": "array",
                    "minItems": 1,
                    "items": _object(
                        {
                            "record": {"type": ["integer", "null"]},
                            "field": {"type": "string"},
                            "problem": {"type": "string"},
                        },
                        closed=True,
                    ),
                }
            },
            closed=True,
        ),
    }


def _object(
    properties: dict[str, Any], *, closed: bool = False, required: list[str] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _list(ref: str, max_items: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": {"$ref": ref}, "minItems": 1}
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


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
