"""The bodies of the OpenAPI document: records, predictions, feedback, errors, typed by the model.

Bounds are written as exact integers (powers of two), the same the service checks with, so a
validator of the document and the service accept exactly the same numbers.
"""

from __future__ import annotations

from typing import Any

from serving import config
from serving.http.app import PREDICTION_ID
from serving.model.fields import NUMBER_LIMIT
from serving.model.served import ServedModel

REF = "#/components/schemas/"


def number_schema(description: str, limit: int) -> dict[str, Any]:
    """A number within ±``limit`` (an exact integer, so every validator draws the same line)."""
    return {"type": "number", "minimum": -limit, "maximum": limit, "description": description}


def _feature(kind: str, required: bool) -> dict[str, Any]:
    if kind in ("long", "integer"):
        bound = 1 << (63 if kind == "long" else 31)
        schema: dict[str, Any] = {"type": "integer", "minimum": -bound, "maximum": bound - 1}
    elif kind in ("double", "float"):
        schema = number_schema("a finite number, |value| <= 2^1023", NUMBER_LIMIT)
    else:
        schema = {"type": {"string": "string", "boolean": "boolean"}[kind]}
    if not required:
        schema["type"] = [schema["type"], "null"]
    return schema


def component_schemas(model: ServedModel, label: dict[str, Any]) -> dict[str, Any]:
    """Every body the service takes or gives, typed by ``model`` (``label``: its label schema)."""
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
            {"records": _list(REF + "Record", max_items)}, closed=True, required=["records"]
        ),
        "Prediction": prediction,
        "Predictions": _object({"predictions": _list(REF + "Prediction")}),
        "Feedback": feedback,
        "FeedbackBatch": _object(
            {"feedback": _list(REF + "Feedback", max_items)}, closed=True, required=["feedback"]
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
