"""Candidate estimators as a spec declares them: a dotted class path and its parameters.

Each one is built once while the spec is parsed, so an unknown class or parameter fails at load
time with the field that named it.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import Field, model_validator
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from mlserve_assets.spec.strict import Strict


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


class Step(Strict):
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


class Candidate(Strict):
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

    def accepts_sample_weight(self) -> bool:
        """Whether fitting can weigh rows (the final step of a Pipeline takes the weights)."""
        return has_fit_parameter(final_step(self.build())[1], "sample_weight")


def final_step(estimator: BaseEstimator) -> tuple[str, BaseEstimator]:
    """The estimator that predicts, however deep Pipelines nest, and its fit-parameter prefix.

    ``("model__step1", LogisticRegression())`` for a prepared two-step candidate: fit parameters
    such as ``sample_weight`` reach it as ``model__step1__sample_weight``.
    """
    path = []
    while isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        path.append(name)
    return "__".join(path), estimator
