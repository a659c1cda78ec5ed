"""Every table of the operational database, and its rows: the one place they are defined.

The prediction log (what the service writes and the feedback assets read), the challenger's
shadow answers, and the history of every move of the ``champion`` and ``challenger`` aliases. One
schema for SQLite and PostgreSQL. A prediction's id is its primary key, so a replayed batch lands
once, and feedback's key is the prediction's id, so a second label is a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import sqlalchemy as sa

from serving.store.columns import JSONText, RecordsText, encode_records
from serving.store.engine import dumps
from serving.store.ids import batch_of, prediction_id

metadata = sa.MetaData()


# One row per answered request, its records in arrays: a row per record cost the writer 12 µs of
# SQLite's per-row work each (1.2 of 1.4 ms per 100 records; 0.17 ms as one row, measured), and
# PostgreSQL three times the CPU. A record's id is its batch id and its ordinal
# (``serving.store.ids``), so a label still finds it through the primary key.
prediction_batches = sa.Table(
    "prediction_batches",
    metadata,
    sa.Column("batch_id", sa.String(28), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    # Each record as it was sent, in order (an array per field: ``serving.store.columns``).
    sa.Column("features", RecordsText, nullable=False),
    sa.Column("predictions", JSONText, nullable=False),
    # Per record; null if the model gives none.
    sa.Column("probabilities", RecordsText, nullable=True),
    # Per record, the spec's column rules it broke, named (``serving.model.rules``); null if
    # no record broke one.
    sa.Column("violations", JSONText, nullable=True),
    sa.Column("records", sa.Integer, nullable=False),
    # The first record's ordinal: 0, except for a record logged alone before batches, whose
    # id's last digits were random.
    sa.Column("first_ordinal", sa.Integer, nullable=False),
    sa.Index("ix_prediction_batches_model", "model_name", "model_version"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    # One label per prediction: the primary key makes a second label a conflict (HTTP 409).
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("ground_truth", sa.JSON, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    # The labelled prediction's model and version, copied at labelling time: what reads labels
    # (the sensor every few seconds) then walks these indexes over the labels alone instead of
    # joining every logged prediction (1.4 s -> a few ms at 1M predictions, measured).
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    # Who sent it: the id of the API key (``serving.http.auth.key_id``), "open" without one.
    # No index: only a purge looks labels up by key, rarely, and may scan.
    sa.Column("key_id", sa.String(16), nullable=True),
    # Set when the key's labels were withdrawn (``label_withdrawals``): no training reads it.
    sa.Column("withdrawn_at", sa.Float, nullable=True),
    # The labelled example, copied at labelling time: when it was predicted, the record and
    # the answer. Training reads labels alone, never a request's whole batch for one record.
    sa.Column("predicted_at", sa.Float, nullable=True),
    sa.Column("features", sa.JSON, nullable=True),
    sa.Column("prediction", sa.JSON, nullable=True),
    sa.Index("ix_feedback_model_received", "model_name", "received_at"),
    sa.Index("ix_feedback_version_received", "model_name", "model_version", "received_at"),
)


def _moves(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False, index=True),
        sa.Column("from_version", sa.String(32), nullable=True),
        sa.Column("to_version", sa.String(32), nullable=False),
        sa.Column("moved_at", sa.Float, nullable=False),
        sa.Column("moved_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
    )


# MLflow keeps no alias history (mlflow/mlflow#2169): every move of ``champion`` is a row here, and
# every move of ``challenger`` (the version scored in shadow) in a table of the same shape; an
# empty ``to_version`` there is a shadow stopped.
champion_moves = _moves("champion_moves")
challenger_moves = _moves("challenger_moves")

# A challenger's answers to requests the champion answered (``serving.shadow``): never sent to
# anyone, kept to compare the two on the same requests once labels arrive. Keyed by the answered
# prediction and the challenger's version, so a replayed batch lands once.
shadow_predictions = sa.Table(
    "shadow_predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("prediction", sa.JSON, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=True),
    sa.Index("ix_shadow_model", "model_name", "model_version"),
)


# In the spool only: batches the database refused on replay (a value it will not take), set aside
# so that the batches after them still reach it. Kept, with the refusal, for someone to look at.
quarantined_batches = sa.Table(
    "quarantined_batches",
    metadata,
    sa.Column("batch_id", sa.String(28), primary_key=True),
    sa.Column("quarantined_at", sa.Float, nullable=False),
    sa.Column("batch", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
)

# One row: the secret that keys each label's role (``mlserve_assets.ml.labels.feedback_role``),
# made at random by the first training that reads labels. Whoever only sends labels cannot
# compute which of theirs will train and which will judge.
label_role_key = sa.Table(
    "label_role_key",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("secret", sa.String(64), nullable=False),
)

# Every withdrawal of a key's labels (``mlserve labels purge``): who, when, why, how many.
label_withdrawals = sa.Table(
    "label_withdrawals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("withdrawn_at", sa.Float, nullable=False),
    sa.Column("withdrawn_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("labels", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class PredictionBatch:
    """One answered request's predictions, as logged: one row, whatever its number of records."""

    batch_id: str
    created_at: float
    model_name: str
    model_version: str
    features: list[dict[str, Any]]
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    violations: list[list[str] | None] | None = None
    first_ordinal: int = 0

    @property
    def prediction_ids(self) -> list[str]:
        """Each record's id, in order."""
        first = self.first_ordinal
        return [prediction_id(self.batch_id, first + i) for i in range(len(self.predictions))]

    def rows(self) -> list[PredictionRow]:
        """Each record's prediction, as the one-record reads return it."""
        return [self.row(i) for i in range(len(self.predictions))]

    def row(self, i: int) -> PredictionRow:
        """The ``i``-th record's prediction."""
        return PredictionRow(
            prediction_id(self.batch_id, self.first_ordinal + i),
            self.created_at,
            self.model_name,
            self.model_version,
            self.features[i],
            self.predictions[i],
            None if self.probabilities is None else self.probabilities[i],
            None if self.violations is None else self.violations[i],
        )

    @classmethod
    def of(cls, row: PredictionRow) -> PredictionBatch:
        """A batch of one record, under the record's own id."""
        batch = batch_of(row.prediction_id)
        if batch is None:
            raise ValueError(f"not a prediction id: {row.prediction_id!r}")
        return cls(
            batch[0],
            row.created_at,
            row.model_name,
            row.model_version,
            [row.features],
            [row.prediction],
            None if row.probabilities is None else [row.probabilities],
            None if row.violations is None else [row.violations],
            batch[1],
        )

    def logged(self, features: Any = None) -> Logged:
        """The batch as the log's columns (``LOGGED_COLUMNS``), its JSON values as text.

        Made once, in the service: the log writer inserts these without reading them. With
        ``features``, that stands for the records instead of their text: the request's own JSON,
        which the writer lays out (``serving.log.protocol``).
        """
        return (
            self.batch_id,
            self.created_at,
            self.model_name,
            self.model_version,
            encode_records(self.features) if features is None else features,
            dumps(self.predictions),
            None if self.probabilities is None else encode_records(self.probabilities),
            None if self.violations is None else dumps(self.violations),
            len(self.predictions),
            self.first_ordinal,
        )

    @classmethod
    def from_row(cls, row: Any) -> PredictionBatch:
        """A batch read from the log (a row of ``prediction_batches``)."""
        values = row._mapping
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class PredictionRow:
    """One answered record's prediction."""

    prediction_id: str
    created_at: float
    model_name: str
    model_version: str
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None = None
    violations: list[str] | None = None


Logged = tuple[str, float, str, str, str, str, str | None, str | None, int, int]
"""A batch as the log's columns, in ``LOGGED_COLUMNS`` order, JSON values as text."""


class Labelled(NamedTuple):
    """A label accepted, with the version that made the prediction and what it said.

    ``new`` is False when an identical label was already stored: a client's retry.
    """

    model_version: str
    prediction: Any
    new: bool
    shadow: tuple[str, Any] | None = None
    """The challenger's version and shadow answer to the same request, if it gave one."""


class LabelsSince(NamedTuple):
    """Labels that arrived after a time: how many, and when the first and the latest came.

    The retraining sensor's count rule reads the count; its quiet rule reads when they came.
    """

    count: int
    first: float
    latest: float


class UnknownPredictionError(LookupError):
    """Feedback for an id the log does not hold."""


class DuplicateFeedbackError(ValueError):
    """A different label for a prediction that already has one: labels are final."""


# The columns of a batch, in the order ``PredictionBatch.logged`` sends its values.
LOGGED_COLUMNS = (
    "batch_id",
    "created_at",
    "model_name",
    "model_version",
    "features",
    "predictions",
    "probabilities",
    "violations",
    "records",
    "first_ordinal",
)
