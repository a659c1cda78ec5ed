"""The YAML spec: what a user declares about each model, parsed into strict, validated objects.

Everything that can be checked before a run is checked here (estimators import and fit the task,
metrics fit the task, columns exist in the source), so that a bad spec fails at load time with the
file, the model, the field and the problem, instead of halfway through a training run (reading
files and locating errors is ``spec_loader``'s). No Dagster import: the CLI reads specs too.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from sklearn.base import is_classifier, is_regressor

from mlserve_assets.ml.metrics import METRICS, Metric, Task, get_metric
from mlserve_assets.spec.candidates import Candidate
from mlserve_assets.spec.sources import Source
from mlserve_assets.spec.strict import Strict
from mlserve_assets.spec.watching import MIN_LIVE_LABELS, Bake, Drift, Shadow

MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Split(Strict):
    """How base rows are divided: ``test_size`` gates, ``validation_size`` of the rest chooses.

    The rows that choose a candidate are never the rows that gate it: picking the best of several
    on one holdout and then judging it there overstates it.
    """

    test_size: float = Field(default=0.25, gt=0, lt=1)
    validation_size: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0
    stratify: bool = True
    by: str | None = Field(default=None, min_length=1)
    """A column of dates, timestamps or increasing numbers: split by time instead of at random.
    The newest ``test_size`` of the rows judge, the newest ``validation_size`` of the rest choose,
    the oldest train (``seed`` and ``stratify`` then do not apply): on time-ordered data a
    random split scores a model on rows interleaved with the ones it trained on. The column is
    not a feature unless ``features`` names it."""


class Gate(Strict):
    """Promotion: past ``threshold`` and ahead of the champion, with confidence.

    With labelled feedback the decisive rows are the held-out recent labels (the traffic being
    served), and the base test split counts with ``base_weight`` as a guard against regressions.
    The challenger is promoted only when the lower end of a paired bootstrap interval of its
    improvement over the champion (at ``confidence``) clears ``min_improvement``. Where the
    champion misses ``threshold`` on the same rows too, the challenger passes it by being surely
    better than a constant answer there (``ml.gate.decide``).

    No one API key carries more than ``source_share`` of the recent labels' weight unless it is
    listed in ``trusted_sources`` (key ids, as `mlserve key` and `mlserve labels senders` print
    them; the embedded default's local key is the owner's and always trusted): what it cannot
    carry goes to the base test rows, which no label sender can touch. One key's labels then
    cannot tell the gate alone that the world changed against the reference rows.

    ``replay_last`` makes the gate replay the newest logged requests: the challenger must also be
    no worse than the champion on the newest ``replay_last`` held-out labels (requests the service
    answered and clients labelled; no training saw them), scored by both versions. The weighted
    evidence can favour a challenger that is better on older traffic and the base rows while it
    already loses on the newest requests; this rule holds such a challenger.
    """

    threshold: float
    min_improvement: float = Field(default=0.0, ge=0)
    confidence: float = Field(default=0.9, gt=0, lt=1)
    base_weight: float = Field(default=0.1, ge=0, le=1)
    source_share: float = Field(default=0.5, gt=0, le=1)
    trusted_sources: list[str] = Field(default_factory=list)
    replay_last: int | None = Field(default=None, gt=0)


class RetrainData(Strict):
    """How retraining mixes the base rows with labelled feedback, and how labels are divided.

    Each label has a stable role, chosen by a hash of its prediction id: ``holdout_fraction`` of
    them only ever gate; the rest fall into ``selection_folds`` folds, each of which in turn
    chooses the candidate and the mix while the others train (the final model fits on them all).
    ``auto`` tries every mix and keeps the one the folds score best: after a real shift a plain
    union lets the old rows outvote the new (measured on a stream rotated by 70 degrees, 300
    feedback rows: union 0.725, feedback weighted 0.826, feedback only 0.920), while without a
    shift the base rows help.
    """

    policy: Literal["auto", "union", "weighted", "recent", "feedback_only"] = "auto"
    feedback_weight: float = Field(default=5.0, gt=0)
    recent_fraction: float = Field(default=0.5, gt=0, le=1)
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    selection_folds: int = Field(default=3, ge=2, le=20)
    label_margin: float = Field(default=1.0, ge=0)
    """Regression labels may lie this many widths of the base target's range beyond it; labels
    further out never train or judge (a few of 1e300 would overflow RMSE for every model)."""


class Retrain(Strict):
    """When the loop retrains on its own, and the guardrails that keep it from storming."""

    min_feedback_rows: int = Field(default=150, ge=1)
    min_live_metric: float | None = None
    # The live metric is the champion's metric on its latest ``live_window`` labels: a shift shows
    # within a window's worth of labels instead of being outvoted by a long good history, and the
    # sensor's read stays the same size however long the log grows.
    live_window: int = Field(default=1000, ge=MIN_LIVE_LABELS)
    max_age_hours: float | None = Field(default=None, gt=0)
    quiet_seconds: float | None = Field(default=60, gt=0)
    """Labels waiting below ``min_feedback_rows`` train once no label has come for this long (and
    for ten times their mean gap), if at least ``min_quiet_rows`` wait: when traffic ends or a
    batch of labels stops short of the threshold, they are not left unused. None: count alone."""
    min_quiet_rows: int = Field(default=MIN_LIVE_LABELS, ge=1)
    check_every_seconds: int = Field(default=5, ge=1)
    cooldown_seconds: float = Field(default=30, ge=0)
    max_runs_per_day: int = Field(default=24, ge=1)
    backoff_live_drop: float = Field(default=0.05, ge=0)
    data: RetrainData = Field(default_factory=RetrainData)


class ColumnRule(Strict):
    """Data rules for one column: a blocking check on the source, a filter on served records.

    A served record that breaks them is answered (the model's signature admitted it) but never
    becomes a training row (``mlserve_assets.ml.labels.admissible``).
    """

    dtype: Literal["numeric", "integer", "string", "bool"] | None = None
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    nullable: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class ModelSpec(Strict):
    """One model: data, target, candidates, metric, gate and retraining rules."""

    name: str
    description: str = ""
    source: Source
    target: str = Field(min_length=1)
    target_missing: Literal["drop", "error"] = "drop"
    """Rows whose target is empty (not labelled yet, a common shape of real tables): ``drop``
    leaves them out and counts them (``validated_dataset``'s metadata, ``mlserve validate``, the
    train summary); ``error`` refuses the data."""
    features: list[str] | None = Field(default=None, min_length=1)
    task: Task
    split: Split = Field(default_factory=Split)
    candidates: list[Candidate] = Field(min_length=1)
    metric: str
    gate: Gate
    retrain: Retrain = Field(default_factory=Retrain)
    bake: Bake = Field(default_factory=Bake)
    drift: Drift = Field(default_factory=Drift)
    shadow: Shadow = Field(default_factory=Shadow)
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    prepare: Literal["auto", "none"] = "auto"
    """``auto``: impute, scale and one-hot encode by column kind in front of every candidate;
    ``none``: the candidates get the columns as they are (bring your own Pipeline)."""
    trusted_types: list[str] = Field(default_factory=list)
    """Types beyond mlserve's list (``serving.model.artifact``) this model's estimators need
    once fitted, as skops names them; a training that needs others is refused with their names.
    The service is given the same list in ``MLSERVE_TRUSTED_TYPES`` (``mlserve serve`` and the
    bento set it)."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(
                "must be lower-case letters, digits and underscores, starting with a letter"
            )
        return value

    @field_validator("features")
    @classmethod
    def _target_not_a_feature(
        cls, value: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        if value is not None and info.data.get("target") in value:
            raise ValueError(f"target {info.data['target']!r} is also listed as a feature")
        return value

    @field_validator("candidates")
    @classmethod
    def _fit_the_task(cls, value: list[Candidate], info: ValidationInfo) -> list[Candidate]:
        task = info.data.get("task")
        for i, candidate in enumerate(value):
            est = candidate.build()
            fits = is_classifier(est) if task == "classification" else is_regressor(est)
            if task is not None and not fits:
                raise ValueError(f"candidate [{i}] {candidate.name!r} is not a {task} estimator")
        names = [c.name for c in value]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str, info: ValidationInfo) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; choose one of {sorted(METRICS)}")
        task = info.data.get("task")
        if task is not None and METRICS[value].task != task:
            raise ValueError(f"metric {value!r} is for {METRICS[value].task}, not {task}")
        return value

    @model_validator(mode="after")
    def _weights_accepted(self) -> ModelSpec:
        """The weighted retraining policy needs every candidate to accept sample weights."""
        if self.retrain.data.policy != "weighted":
            return self
        for candidate in self.candidates:
            if not candidate.accepts_sample_weight():
                raise ValueError(
                    f"retrain.data.policy 'weighted' needs sample weights, which candidate "
                    f"{candidate.name!r} does not accept: choose 'auto', 'union', 'recent' or "
                    "'feedback_only'"
                )
        return self

    @model_validator(mode="after")
    def _no_stratified_regression(self) -> ModelSpec:
        """Stratifying on a continuous target is meaningless: regression splits at random."""
        if self.task == "regression" and self.split.stratify:
            return self.model_copy(
                update={"split": self.split.model_copy(update={"stratify": False})}
            )
        return self

    @property
    def scorer(self) -> Metric:
        """The selection metric."""
        return get_metric(self.metric)

    def required_columns(self) -> list[str]:
        """Columns the source must have: target, declared features, ruled and time columns."""
        ordered_by = [self.split.by] if self.split.by else []
        return list(
            dict.fromkeys([self.target, *(self.features or []), *self.columns, *ordered_by])
        )


class SpecFile(Strict):
    """A spec file: one or more models."""

    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SpecFile:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self
