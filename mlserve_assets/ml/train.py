"""Splitting, mixing, fitting and scoring: plain functions of data and spec, no tracking or Dagster.

Every row has one role. Base rows are split once (by the spec's seed) into train, selection and
test; each labelled feedback row gets its role from a hash of its prediction id, so it keeps it
across retrainings and processes. Train rows fit, selection rows choose the candidate and the
data mix, test and gate rows only judge: a model is never scored on rows that chose or trained it.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlserve_assets.candidates import Candidate
from mlserve_assets.ml.feedback import feedback_role
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.prepare import Kind, as_text, input_schema, preparation
from mlserve_assets.spec import RetrainData, Split

# Below this many rows a feedback-only mix is not tried: a model fitted on a handful of labels
# says more about the handful than about the traffic.
MIN_MIX_ROWS = 20


@dataclass(frozen=True)
class Rows:
    """Features and target of one part of the data."""

    x: pd.DataFrame
    y: pd.Series

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def join(cls, *parts: Rows) -> Rows:
        """The parts one after the other."""
        return cls(
            pd.concat([p.x for p in parts], ignore_index=True),
            pd.concat([p.y for p in parts], ignore_index=True),
        )


@dataclass(frozen=True)
class DatasetSplit:
    """Every row in its role: train, selection (chooses) and test/gate (judges)."""

    base_train: Rows
    base_select: Rows
    base_test: Rows
    feedback_train: Rows
    feedback_select: Rows
    feedback_gate: Rows
    data_version: str
    feedback_watermark: float = 0.0
    feedback_gate_received: tuple[float, ...] = ()
    """When each gate label arrived, so the gate can judge on the traffic since the champion."""
    kinds: dict[str, Kind] | None = None
    """Each feature's kind when mlserve prepares the columns; None under ``prepare: none``."""
    schema: tuple[tuple[str, str, bool], ...] = ()
    """(name, type, required) of each feature as the source gave it: the served contract."""

    def preparation(self) -> ColumnTransformer | None:
        """A fresh, unfitted preparation for these columns (None under ``prepare: none``)."""
        return None if self.kinds is None else preparation(self.kinds)

    @property
    def features(self) -> list[str]:
        """Feature names in the order the model sees them."""
        return list(self.base_train.x.columns)

    @property
    def has_feedback(self) -> bool:
        """Whether labelled feedback reached every role (train, selection and gate)."""
        return all(len(p) for p in (self.feedback_train, self.feedback_select, self.feedback_gate))

    @property
    def feedback_rows(self) -> int:
        """Labelled rows a final model trains on (train and selection roles)."""
        return len(self.feedback_train) + len(self.feedback_select)


@dataclass(frozen=True)
class TrainingSet:
    """Rows to fit on, with a weight per row where the mix gives one."""

    rows: Rows
    weight: np.ndarray | None = None


@dataclass(frozen=True)
class Mix:
    """One way of combining base rows and feedback for training."""

    name: str
    needs_weights: bool = False

    def build(self, base: Rows, feedback: Rows, policy: RetrainData) -> TrainingSet:
        """The training set this mix makes from ``base`` and time-ordered ``feedback``."""
        if self.name == "base":
            return TrainingSet(base)
        if self.name == "union":
            return TrainingSet(Rows.join(base, feedback))
        if self.name == "weighted":
            weight = np.concatenate(
                [np.ones(len(base)), np.full(len(feedback), policy.feedback_weight)]
            )
            return TrainingSet(Rows.join(base, feedback), weight)
        if self.name == "recent":
            keep = max(1, math.ceil(len(feedback) * policy.recent_fraction))
            return TrainingSet(Rows(feedback.x.tail(keep), feedback.y.tail(keep)))
        return TrainingSet(feedback)  # feedback_only


MIXES = {
    m.name: m for m in (Mix("union"), Mix("weighted", True), Mix("recent"), Mix("feedback_only"))
}
BASE_ONLY = Mix("base")


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate fitted on one mix, with its selection score."""

    name: str
    mix: str
    estimator: BaseEstimator
    score: float
    fit_seconds: float
    rows: int


@dataclass(frozen=True)
class Skipped:
    """A candidate x mix that was not fitted, and why."""

    name: str
    mix: str
    reason: str


@dataclass
class Selection:
    """Every candidate x mix tried: fitted ones best first, skipped ones with their reason."""

    fitted: list[FittedCandidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def data_version(frame: pd.DataFrame) -> str:
    """A content hash of the rows, stable across processes, to tag runs with the data they saw."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(row_hashes.tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


def _split(x: pd.DataFrame, y: pd.Series, size: float, split: Split) -> tuple[Rows, Rows]:
    x_a, x_b, y_a, y_b = train_test_split(
        x, y, test_size=size, random_state=split.seed, stratify=y if split.stratify else None
    )
    return Rows(x_a, y_a), Rows(x_b, y_b)


def split_dataset(
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    split: Split,
    feedback: pd.DataFrame | None = None,
    policy: RetrainData | None = None,
    kinds: dict[str, Kind] | None = None,
) -> DatasetSplit:
    """Base rows split by the spec's seed; feedback rows by their prediction ids' stable roles.

    With ``kinds``, categorical columns are turned to text first (see ``prepare.as_text``).
    """
    schema = tuple(input_schema(frame[features]))
    if kinds is not None:
        frame = as_text(frame, kinds)
        feedback = None if feedback is None else as_text(feedback, kinds)
    rest, test = _split(frame[features], frame[target], split.test_size, split)
    train, select = _split(rest.x, rest.y, split.validation_size, split)
    empty = Rows(frame[features].iloc[:0], frame[target].iloc[:0])
    parts = {"train": empty, "select": empty, "gate": empty}
    watermark, gate_received = 0.0, ()
    if feedback is not None and len(feedback):
        policy = policy or RetrainData()
        ordered = feedback.sort_values("received_at", kind="stable")
        roles = ordered["prediction_id"].map(
            lambda i: feedback_role(i, policy.holdout_fraction, policy.selection_fraction)
        )
        for role in parts:
            chosen = ordered[roles == role]
            parts[role] = Rows(
                chosen[features].reset_index(drop=True),
                chosen[target].astype(frame[target].dtype).reset_index(drop=True),
            )
        watermark = float(feedback["received_at"].max())
        gate_received = tuple(ordered.loc[roles == "gate", "received_at"].astype(float))
    every = [train, select, test, parts["train"], parts["select"], parts["gate"]]
    version = data_version(pd.concat([p.x.assign(_y=p.y.to_numpy()) for p in every]))
    return DatasetSplit(
        train, select, test, *parts.values(), version, watermark, gate_received, kinds, schema
    )


def mixes_for(policy: RetrainData, data: DatasetSplit) -> list[Mix]:
    """The mixes to try: base rows alone without feedback, else the policy's (all for auto)."""
    if not data.has_feedback:
        return [BASE_ONLY]
    return list(MIXES.values()) if policy.policy == "auto" else [MIXES[policy.policy]]


def selection_score(
    estimator: BaseEstimator, data: DatasetSplit, metric: Metric, base_weight: float
) -> float:
    """Score on the selection rows: the recent labels, with the base rows at ``base_weight``."""
    base = score(estimator, data.base_select, metric)
    if not len(data.feedback_select):
        return base
    recent = score(estimator, data.feedback_select, metric)
    return (1 - base_weight) * recent + base_weight * base


def _unusable(candidate: Candidate, mix: Mix, train: TrainingSet, classification: bool) -> str:
    if mix.needs_weights and not candidate.accepts_sample_weight():
        return "the estimator takes no sample weights"
    if mix.name != "base" and len(train.rows) < MIN_MIX_ROWS:
        return f"{len(train.rows)} rows, fewer than {MIN_MIX_ROWS}"
    if classification and train.rows.y.nunique() < 2:
        return "one class only"
    return ""


def select_candidates(
    candidates: list[Candidate],
    data: DatasetSplit,
    metric: Metric,
    policy: RetrainData,
    base_weight: float,
) -> Selection:
    """Fit every candidate on every mix's training rows and score each on the selection rows."""
    selection = Selection()
    classification = metric.task == "classification"
    for mix in mixes_for(policy, data):
        train = mix.build(data.base_train, data.feedback_train, policy)
        for candidate in candidates:
            reason = _unusable(candidate, mix, train, classification)
            if reason:
                selection.skipped.append(Skipped(candidate.name, mix.name, reason))
                continue
            estimator, seconds = fit(candidate, train, data.preparation())
            value = selection_score(estimator, data, metric, base_weight)
            selection.fitted.append(
                FittedCandidate(
                    candidate.name, mix.name, estimator, value, seconds, len(train.rows)
                )
            )
    return selection


def refit(
    candidate: Candidate, mix_name: str, data: DatasetSplit, policy: RetrainData
) -> TrainingSet:
    """The chosen mix over train and selection rows together: the final model sees both."""
    mix = BASE_ONLY if mix_name == "base" else MIXES[mix_name]
    base = Rows.join(data.base_train, data.base_select)
    feedback = Rows.join(data.feedback_train, data.feedback_select)
    return mix.build(base, feedback, policy)


def fit(
    candidate: Candidate, train: TrainingSet, prepare: ColumnTransformer | None = None
) -> tuple[BaseEstimator, float]:
    """A fresh estimator, behind ``prepare`` when given, fitted on the set.

    Sample weights go to the final estimator, however deep the Pipelines nest.
    """
    estimator = candidate.build()
    if prepare is not None:
        estimator = Pipeline([("prepare", prepare), ("model", estimator)])
    started = time.perf_counter()
    x, y = train.rows.x, train.rows.y
    if train.weight is None:
        estimator.fit(x, y)
    else:
        estimator.fit(x, y, **{_weight_parameter(estimator): train.weight})
    return estimator, time.perf_counter() - started


def _weight_parameter(estimator: BaseEstimator) -> str:
    path = []
    while isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        path.append(name)
    return "__".join([*path, "sample_weight"])


def score(estimator: BaseEstimator, rows: Rows, metric: Metric) -> float:
    """The metric on some rows."""
    return float(metric.score(rows.y.to_numpy(), estimator.predict(rows.x)))
