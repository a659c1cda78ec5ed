"""The OpenAPI document: generated from the routes and their models, then typed by the served model.

FastAPI writes the document from the routes as declared (``serving.http.app.route``: scope,
answer model, failures) and the pydantic bodies (``serving.http.bodies``), so a route or a field
exists in one place. What FastAPI cannot know is filled in per served version: each feature with
its type, nullability and an example record from the training data, the label typed by the task
(its classes, or a number), the list limits, the statuses every route shares, and the API-key scheme
only where a key is required. FastAPI would otherwise document a record as
``{"additionalProp1": {}}``, from which a client could not send one valid request. The document is
rebuilt whenever the served version changes; ``AppDocs`` makes BentoML's own document and index page
show it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from serving.http.app import SCOPE
from serving.http.auth import SCOPES, ApiKeys
from serving.model.fields import LABEL_LIMIT, NUMBER_LIMIT
from serving.model.served import ServedModel

REF = "#/components/schemas/"

# What each status means, whatever the route.
MEANING = {
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
    429: (
        "This API key sent its labels for the minute (`MLSERVE_FEEDBACK_PER_MINUTE`); nothing was "
        "stored. Retry after the `Retry-After` header's seconds."
    ),
    422: (
        "The body does not fit the contract; each error names the record and field. A record "
        "that fits the schema is refused too when the model cannot score it: its output is not "
        "a finite number (values far outside the data the model was trained on)."
    ),
    500: "A fault of the service; the message is short, the service log has the detail.",
    503: "A store is unavailable; nothing was kept, retry later.",
    504: "No answer in time; retry later.",
}
# Every route can time out or fault; a route with a body can also have a bad one.
SHARED = (500, 504)
BODY = (400, 408, 413, 415, 422)


def document(app: FastAPI, model: ServedModel, keys: ApiKeys, max_records: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app`` serving ``model``."""
    doc = get_openapi(
        title=f"mlserve: {model.name} v{model.version}",
        version=model.version,
        openapi_version="3.1.0",
        description=_description(model, keys.open_scopes),
        routes=app.routes,
    )
    schemas = doc["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            _operation(path, operation, keys.open_scopes)
    _typed(schemas, model, max_records)
    doc["components"]["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": f"An API key with the route's scope ({', '.join(SCOPES)}).",
        }
    }
    return doc


def _operation(path: str, operation: dict[str, Any], open_scopes: frozenset[str]) -> None:
    """The statuses every route shares, the security its scope asks, a summary and an id."""
    scope = operation.get(SCOPE)
    if scope is None:
        raise ValueError(f"{path} was declared without serving.http.app.route: no scope")
    statuses = [*SHARED, *(BODY if "requestBody" in operation else ())]
    statuses += [] if scope in open_scopes else [401, 403]
    responses = operation["responses"]
    for status in statuses:
        responses.setdefault(str(status), {"content": _json("Errors")})
    for status, response in responses.items():
        response["description"] = MEANING[int(status)]
    operation["responses"] = dict(sorted(responses.items()))
    operation["security"] = [] if scope in open_scopes else [{"apiKey": []}]
    operation["operationId"] = path.strip("/").replace("/", "_")
    operation["summary"] = operation.get("description", "").split("\n", 1)[0]


def _typed(schemas: dict[str, Any], model: ServedModel, max_records: int) -> None:
    """The bodies typed by the served model: its features, its label, the list limits."""
    label = (
        {"enum": model.classes}
        if model.classes is not None
        else _number("a finite number, |value| <= 2^511", LABEL_LIMIT)
    )
    record: dict[str, Any] = {
        "type": "object",
        "description": "One record: every feature of the model's signature, nothing else.",
        "properties": {f.name: _feature(f.type, f.required) for f in model.features},
        "required": [f.name for f in model.features],
        "additionalProperties": False,
    }
    if model.example is not None:
        record["examples"] = [model.example]
    schemas["Record"] = record
    records = schemas["PredictRequest"]["properties"]["records"]
    records |= {"items": {"$ref": REF + "Record"}, "maxItems": max_records}
    schemas["FeedbackBatch"]["properties"]["feedback"]["maxItems"] = max_records
    schemas["Feedback"]["properties"]["ground_truth"] = label
    prediction = schemas["Prediction"]["properties"]
    prediction["prediction"] = label
    if model.classes is None:
        del prediction["probabilities"]
    else:
        prediction["probabilities"] = {
            "type": "object",
            "properties": {str(c): {"type": "number"} for c in model.classes},
        }


def _feature(kind: str, required: bool) -> dict[str, Any]:
    """A feature's schema, bounded exactly as the service checks it (``serving.model.fields``)."""
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


def _number(description: str, limit: int) -> dict[str, Any]:
    """A number within ±``limit``, written as an exact integer so every validator draws one line."""
    return {"type": "number", "minimum": -limit, "maximum": limit, "description": description}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF + schema}}}


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


def install_openapi(app: FastAPI, service: Callable[[], Any]) -> None:
    """Serve ``document`` at ``/openapi.json`` and a docs page titled with the model at ``/docs``.

    The docs page loads Swagger UI from BentoML's bundled copy, so it works with no internet.
    """
    cache: dict[tuple[str, str], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        running = service()
        model = running.model
        key = (model.name, model.version)
        if key not in cache:
            cache.clear()
            cache[key] = document(app, model, running.config.keys, running.config.max_records)
        return cache[key]

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        model = service().model
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
