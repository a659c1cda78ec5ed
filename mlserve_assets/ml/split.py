"""Every row in its role: base rows split by the spec's seed, labels by a hash of their ids.

Base rows are split once into train, selection and test; each labelled feedback row gets its role
from a hash of its prediction id, so it keeps it across retrainings and processes. Train rows fit,
selection rows choose the candidate and the data mix, test and gate rows only judge: a model is
never scored on rows that chose or trained it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split

from mlserve_assets.ml.feedback import feedback_role
from mlserve_assets.ml.prepare import Kind, as_text, input_schema, preparation
from mlserve_assets.spec import RetrainData, Split


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
