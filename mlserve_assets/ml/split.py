"""Every row in its role: base rows split by the spec's seed, labels by a hash of their ids.

Base rows are split once into train, selection and test; each labelled feedback row gets its role
from a hash of its prediction id, so it keeps it across retrainings and processes: a gate label,
or one of the selection folds. Train rows fit, selection rows (the base selection split, and each
fold of labels in turn) choose the candidate and the data mix, test and gate rows only judge: a
model is never scored on rows that chose or trained it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split

from mlserve_assets.ml.labels import GATE, UNKNOWN_SENDER, feedback_role
from mlserve_assets.ml.prepare import Kind, as_text, input_schema, preparation
from mlserve_assets.ml.time_order import as_time
from mlserve_assets.spec.models import RetrainData, Split


@dataclass(frozen=True)
class Rows:
    """Features and target of one part of the data."""

    x: pd.DataFrame
    y: pd.Series

    def __len__(self) -> int:
        return len(self.x)

    def take(self, mask: np.ndarray) -> Rows:
        """The rows a boolean ``mask`` picks, in their order, renumbered."""
        return Rows(self.x[mask].reset_index(drop=True), self.y[mask].reset_index(drop=True))

    @classmethod
    def join(cls, *parts: Rows) -> Rows:
        """The parts one after the other."""
        return cls(
            pd.concat([p.x for p in parts], ignore_index=True),
            pd.concat([p.y for p in parts], ignore_index=True),
        )


@dataclass(frozen=True)
class Holdout:
    """Rows that judge a model, and their weight in its score."""

    name: str
    rows: Rows
    weight: float


def weighted_holdouts(recent: Rows, base: Rows, base_weight: float) -> list[Holdout]:
    """Recent labels, with base rows at ``base_weight``; base rows alone while no label is there.

    The one weighting of traffic against the original data, for choosing (selection rows) and for
    judging (gate rows) alike.
    """
    if not len(recent):
        return [Holdout("base", base, 1.0)]
    parts = [Holdout("recent", recent, 1.0 - base_weight), Holdout("base", base, base_weight)]
    return [h for h in parts if h.weight > 0]


@dataclass(frozen=True)
class DatasetSplit:
    """Every row in its role: train, selection (chooses) and test/gate (judges)."""

    base_train: Rows
    base_select: Rows
    base_test: Rows
    feedback_fit: Rows
    """Labels that fit and choose, oldest first: each fold chooses while the others train."""
    feedback_folds: tuple[int, ...]
    """The selection fold of each ``feedback_fit`` row."""
    feedback_gate: Rows
    data_version: str
    feedback_watermark: float = 0.0
    feedback_gate_received: tuple[float, ...] = ()
    """When each gate label arrived, so the gate can judge on the traffic since the champion."""
    feedback_gate_senders: tuple[str, ...] = ()
    """The key that sent each gate label, so no one source carries the gate alone."""
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
        """Whether labels reached the gate and at least two folds (one to choose, one to fit)."""
        return len(self.feedback_gate) > 0 and len(set(self.feedback_folds)) >= 2

    @property
    def feedback_rows(self) -> int:
        """Labelled rows a final model trains on (every fold)."""
        return len(self.feedback_fit)

    def selection_rounds(self) -> Iterator[tuple[Rows, Rows]]:
        """(labels to fit on, labels to choose by) for each fold; one round of none without.

        Every fit label chooses once and fits in the other rounds: a choice made on a few dozen
        labels flips with the draw of which labels those are (measured on the drift streams:
        one fixed 20% selection share chose a model more than 0.03 short of the post-shift
        concept in 12 of 100 draws of ids at 300 labels; three folds, in none).
        """
        folds = np.asarray(self.feedback_folds, dtype=int)
        if not self.has_feedback:
            none = self.feedback_fit.take(np.zeros(len(folds), dtype=bool))
            yield none, none
            return
        for fold in sorted(set(self.feedback_folds)):
            held = folds == fold
            yield self.feedback_fit.take(~held), self.feedback_fit.take(held)


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


def _split_by_time(
    frame: pd.DataFrame, features: list[str], target: str, split: Split
) -> tuple[Rows, Rows, Rows]:
    """Oldest rows train, the next choose, the newest judge; sizes rounded as at random.

    ``train_test_split`` rounds the test share up: so do these, so a time split of a table has
    the sizes a random split of it would.
    """
    ordered = frame.assign(_time=as_time(frame[split.by])).sort_values("_time", kind="stable")
    x, y = ordered[features], ordered[target]
    judge = math.ceil(len(ordered) * split.test_size)
    rest = len(ordered) - judge
    train = rest - math.ceil(rest * split.validation_size)
    return (
        Rows(x.iloc[:train], y.iloc[:train]),
        Rows(x.iloc[train:rest], y.iloc[train:rest]),
        Rows(x.iloc[rest:], y.iloc[rest:]),
    )


def split_dataset(
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    split: Split,
    feedback: pd.DataFrame | None = None,
    policy: RetrainData | None = None,
    kinds: dict[str, Kind] | None = None,
    role_secret: bytes | None = None,
) -> DatasetSplit:
    """Base rows split by the spec's seed (or by time); labels by their ids' stable roles.

    With ``kinds``, categorical columns are turned to text first (see ``prepare.as_text``). The
    roles are keyed by ``role_secret`` (the prediction log's), required with feedback.
    """
    schema = tuple(input_schema(frame[features]))
    if kinds is not None:
        frame = as_text(frame, kinds)
        feedback = None if feedback is None else as_text(feedback, kinds)
    if split.by is None:
        rest, test = _split(frame[features], frame[target], split.test_size, split)
        train, select = _split(rest.x, rest.y, split.validation_size, split)
    else:
        train, select, test = _split_by_time(frame, features, target, split)
    fit = gate = Rows(frame[features].iloc[:0], frame[target].iloc[:0])
    folds: tuple[int, ...] = ()
    watermark, gate_received, gate_senders = 0.0, (), ()
    if feedback is not None and len(feedback):
        if role_secret is None:
            raise ValueError("labels need the prediction log's role secret to be given roles")
        policy = policy or RetrainData()
        # Under a time split, labels in the order their predictions were made.
        when = "created_at" if split.by and "created_at" in feedback else "received_at"
        ordered = feedback.sort_values(when, kind="stable").reset_index(drop=True)
        roles = ordered["prediction_id"].map(
            lambda i: feedback_role(i, policy.holdout_fraction, policy.selection_folds, role_secret)
        )
        labels = Rows(
            ordered[features], ordered[target].astype(frame[target].dtype).reset_index(drop=True)
        )
        is_gate = (roles == GATE).to_numpy()
        fit, gate = labels.take(~is_gate), labels.take(is_gate)
        folds = tuple(int(r) for r in roles[~is_gate])
        watermark = float(feedback["received_at"].max())
        gate_received = tuple(ordered.loc[is_gate, "received_at"].astype(float))
        senders = ordered.get("key_id", pd.Series(UNKNOWN_SENDER, index=ordered.index))
        gate_senders = tuple(senders[is_gate].fillna(UNKNOWN_SENDER).astype(str))
    every = [train, select, test, fit, gate]
    version = data_version(pd.concat([p.x.assign(_y=p.y.to_numpy()) for p in every]))
    return DatasetSplit(
        train,
        select,
        test,
        fit,
        folds,
        gate,
        version,
        watermark,
        gate_received,
        gate_senders,
        kinds,
        schema,
    )
