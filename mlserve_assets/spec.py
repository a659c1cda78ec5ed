"""The YAML spec: what a user declares about each model, parsed into strict, validated objects.

Everything that can be checked before a run is checked here (estimators import and fit the task,
metrics fit the task, columns exist in the source), so that a bad spec fails at load time with the
file, the model, the field and the problem, instead of halfway through a training run. No Dagster
import: the CLI and the serving side read specs too.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from mlserve_assets.ml.metrics import METRICS, Metric, Task, get_metric
from mlserve_assets.sources import FileSource, Source

MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def import_estimator(path: str) -> type[BaseEstimator]:
    """Resolve a dotted path such as ``sklearn.linear_model.Ridge`` to an estimator class."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"unknown estimator {path!r}: give a dotted path such as sklearn.svm.SVC")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"unknown estimator {path!r}: cannot import {module_name!r}") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"unknown estimator {path!r}: {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ValueError(f"{path!r} is not a scikit-learn estimator class")
    return cls


class Step(_Strict):
    """One estimator and its constructor parameters."""

    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _constructible(self) -> Step:
        self.build()
        return self

    def build(self) -> BaseEstimator:
        """A fresh, unfitted estimator; unknown parameters are rejected by scikit-learn itself."""
        cls = import_estimator(self.estimator)
        try:
            return cls().set_params(**self.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid params for {self.estimator}: {exc}") from exc


class Candidate(_Strict):
    """A candidate: one estimator, or a Pipeline of ``steps`` (the last one predicts)."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
    estimator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> Candidate:
        if (self.estimator is None) == (self.steps is None):
            raise ValueError("give exactly one of estimator (with params) or steps")
        if self.steps is not None and self.params:
            raise ValueError("params belong to each step when steps are given")
        if self.estimator is not None:
            Step(estimator=self.estimator, params=self.params)
        return self

    def build(self) -> BaseEstimator:
        """A fresh, unfitted estimator or Pipeline."""
        if self.steps is None:
            return Step(estimator=self.estimator or "", params=self.params).build()
        return Pipeline([(f"step{i}", s.build()) for i, s in enumerate(self.steps)])


class Split(_Strict):
    """How rows are held out for scoring candidates and the champion alike."""

    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 0
    stratify: bool = True


class Gate(_Strict):
    """Promotion: past ``threshold`` (worst acceptable metric value) and ahead of the champion."""

    threshold: float
    min_improvement: float = Field(default=0.0, ge=0)


class RetrainData(_Strict):
    """How retraining mixes the base dataset with labelled feedback.

    ``weighted`` keeps the base rows but counts each feedback row ``feedback_weight`` times: after a
    real shift, a plain union lets the old data outvote the new (shared/RETRAINING.md).
    """

    policy: Literal["union", "weighted", "feedback_only"] = "weighted"
    feedback_weight: float = Field(default=5.0, gt=0)
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)


class Retrain(_Strict):
    """When the loop retrains on its own, and with what data."""

    min_feedback_rows: int = Field(default=200, ge=1)
    min_live_metric: float | None = None
    max_age_hours: float | None = Field(default=None, gt=0)
    check_every_seconds: int = Field(default=5, ge=1)
    data: RetrainData = Field(default_factory=RetrainData)


class ColumnRule(_Strict):
    """Data rules for one column, enforced by a blocking check before training."""

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


class ModelSpec(_Strict):
    """One model: data, target, candidates, metric, gate and retraining rules."""

    name: str
    description: str = ""
    source: Source
    target: str = Field(min_length=1)
    features: list[str] | None = Field(default=None, min_length=1)
    task: Task
    split: Split = Field(default_factory=Split)
    candidates: list[Candidate] = Field(min_length=1)
    metric: str
    gate: Gate
    retrain: Retrain = Field(default_factory=Retrain)
    columns: dict[str, ColumnRule] = Field(default_factory=dict)

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
            final = candidate.build()
            final = final.steps[-1][1] if isinstance(final, Pipeline) else final
            if not has_fit_parameter(final, "sample_weight"):
                raise ValueError(
                    f"retrain.data.policy 'weighted' needs sample weights, which candidate "
                    f"{candidate.name!r} ({type(final).__name__}) does not accept: choose "
                    "'union' or 'feedback_only'"
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
        """Columns the source must have: target, declared features and ruled columns."""
        return list(dict.fromkeys([self.target, *(self.features or []), *self.columns]))


class SpecFile(_Strict):
    """A spec file: one or more models."""

    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SpecFile:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self


class SpecError(ValueError):
    """A spec that cannot run, with every problem located by file, model and field."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"sklearn", "file", "sql"} and out.endswith("source"):
            continue  # the discriminator tag pydantic inserts, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(raw: Any, error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        model = f"model #{loc[1]}"
        with_name = raw.get("models") if isinstance(raw, dict) else None
        if isinstance(with_name, list) and loc[1] < len(with_name):
            entry = with_name[loc[1]]
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                model = f"model {entry['name']!r}"
        return f"{model}: field {_field_path(loc[2:])!r}: {message}"
    return f"field {_field_path(loc)!r}: {message}"


def _check_columns(model: ModelSpec) -> list[str]:
    try:
        available = model.source.columns()
    except (OSError, ValueError) as exc:
        return [f"model {model.name!r}: field 'source': {exc}"]
    if available is None:
        return []
    return [
        f"model {model.name!r}: field {field!r}: column {column!r} is not in the source "
        f"(it has {len(available)} columns, e.g. {available[:5]})"
        for field, column in [
            ("target", model.target),
            *(("features", f) for f in model.features or []),
            *(("columns", c) for c in model.columns),
        ]
        if column not in available
    ]


def load_spec(path: str | Path) -> SpecFile:
    """Parse and fully check one spec file; raise SpecError listing every problem found."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise SpecError(path, [f"not valid YAML: {exc}"]) from exc
    try:
        spec = SpecFile.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(path, [_describe(raw, e) for e in exc.errors()]) from exc
    models = [
        m.model_copy(update={"source": m.source.resolved(path.parent)})
        if isinstance(m.source, FileSource)
        else m
        for m in spec.models
    ]
    problems = [p for m in models for p in _check_columns(m)]
    if problems:
        raise SpecError(path, problems)
    return SpecFile(models=models)


def load_specs(paths: list[Path]) -> list[ModelSpec]:
    """Every model of every file, with model names unique across files."""
    models: list[ModelSpec] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for model in load_spec(path).models:
            if model.name in seen:
                raise SpecError(
                    path,
                    [f"model {model.name!r}: field 'name': already declared in {seen[model.name]}"],
                )
            seen[model.name] = path
            models.append(model)
    return models
