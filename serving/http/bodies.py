"""Every body the service takes or gives, as pydantic models: the contract's one written form.

Requests are parsed with these models; answers are built as plain dicts for speed (a pydantic
answer model costs a validation pass per record) and these models document them. The OpenAPI
document is generated from them (``serving.http.openapi``), and the in-process tests validate real
answers against the document, so a field added to an answer and not here goes red.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class Prediction(BaseModel):
    """One record's answer; ``probabilities`` only from a classifier."""

    prediction_id: str = Field(pattern=PREDICTION_ID)
    prediction: Any
    probabilities: dict[str, float] | None = None
    model_name: str
    model_version: str


class Predictions(BaseModel):
    """Every record's answer, in the order of the records."""

    predictions: list[Prediction] = Field(min_length=1)


class FeedbackStored(BaseModel):
    """One label: stored now (201), or the same label was stored before (200)."""

    prediction_id: str
    status: Literal["stored", "already stored"]


class FeedbackResult(BaseModel):
    """One item of a batch: its status and, when refused, why."""

    prediction_id: str
    status: Literal[200, 201, 404, 409]
    problem: str | None


class FeedbackResults(BaseModel):
    """Each item's result, in the order of the batch."""

    results: list[FeedbackResult]


class TrainingMetric(BaseModel):
    """The metric the version was chosen on, and its score at training."""

    name: str | None
    value: float | None


class FeatureInfo(BaseModel):
    """One input of the signature."""

    name: str
    type: str
    nullable: bool


class ModelInfo(BaseModel):
    """The served model: what ``GET /model`` reports."""

    name: str
    version: str
    alias: str
    mlflow_run_id: str
    training_metric: TrainingMetric
    task: Literal["classification", "regression"]
    classes: list[Any] | None
    features: list[FeatureInfo]
    runtime: Literal["onnx", "scikit-learn"]
    """What answers: the version's verified ONNX twin, or scikit-learn (``serving.model.twin``)."""
    prediction_log_spooled: int | None = None
    shadow_version: str | None = None
    """The challenger scored in shadow on answered requests (``mlserve promote --shadow``)."""


class Reloaded(BaseModel):
    """The version served after a reload, and whether the reload changed it."""

    name: str
    version: str
    changed: bool
    refused: str | None = None
    """Why the version the champion alias names is not served, while it is refused."""


class Problem(BaseModel):
    """One thing wrong: the record (for a list), the field, and what is wrong with it."""

    model_config = ConfigDict(extra="forbid")

    record: int | None
    field: str
    problem: str


class Errors(BaseModel):
    """Every error answer, whatever the status and whichever layer refused."""

    model_config = ConfigDict(extra="forbid")

    errors: list[Problem] = Field(min_length=1)
