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

from serving.store.engine import dumps

metadata = sa.MetaData()

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("prediction", sa.JSON, nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=True),
    # The spec's column rules the record broke, named (``serving.model.rules``); null if none.
    sa.Column("violations", sa.JSON, nullable=True),
    sa.Index("ix_predictions_model", "model_name", "model_version"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    # One label per prediction: the primary key makes a second label a conflict (HTTP 409).
    sa.Column(
        "prediction_id",
        sa.String(36),
        sa.ForeignKey("predictions.prediction_id"),
        primary_key=True,
    ),
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


# In the spool only: rows the database refused on replay (a value it will not take), set aside so
# that the rows after them still reach it. Kept, with the refusal, for someone to look at.
quarantined_predictions = sa.Table(
    "quarantined_predictions",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("quarantined_at", sa.Float, nullable=False),
    sa.Column("row", sa.Text, nullable=False),
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
class PredictionRow:
    """One answered prediction, as logged."""

    prediction_id: str
    created_at: float
    model_name: str
    model_version: str
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None = None
    violations: list[str] | None = None

    def logged(self) -> Logged:
        """The row as the log's columns (``LOGGED_COLUMNS``), its JSON values as text.

        Made once, where the row is made: the log writer inserts these without reading them.
        """
        return (
            self.prediction_id,
            self.created_at,
            self.model_name,
            self.model_version,
            dumps(self.features),
            dumps(self.prediction),
            None if self.probabilities is None else dumps(self.probabilities),
            None if self.violations is None else dumps(self.violations),
        )


Logged = tuple[str, float, str, str, str, str, str | None, str | None]
"""A prediction as the log's columns, in ``LOGGED_COLUMNS`` order, JSON values as text."""


class Labelled(NamedTuple):
    """A label accepted, with the version that made the prediction and what it said.

    ``new`` is False when an identical label was already stored: a client's retry.
    """

    model_version: str
    prediction: Any
    new: bool
    shadow: tuple[str, Any] | None = None
    """The challenger's version and shadow answer to the same request, if it gave one."""


class UnknownPredictionError(LookupError):
    """Feedback for an id the log does not hold."""


class DuplicateFeedbackError(ValueError):
    """A different label for a prediction that already has one: labels are final."""


def upgrade(engine: sa.Engine) -> None:
    """Bring an older log up to date: each label's model and sender, each record's violations.

    Idempotent and safe to race: a process that finds the columns already there does nothing,
    and one that loses the race to add them sees the winner's columns on its second look.
    """
    _add_model(engine)
    for table, column in (
        (feedback, "key_id"),
        (feedback, "withdrawn_at"),
        (predictions, "violations"),
    ):
        if column in _columns(engine, table):
            continue
        kind = table.c[column].type.compile(engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} {kind}")
        except sa.exc.DBAPIError:
            if column not in _columns(engine, table):
                raise


def _add_model(engine: sa.Engine) -> None:
    """The labelled prediction's model and version, copied onto a log written before them."""
    if "model_name" in _columns(engine, feedback):
        return
    try:
        with engine.begin() as conn:
            for column in ("model_name", "model_version"):
                kind = f"VARCHAR({feedback.c[column].type.length}) NOT NULL DEFAULT ''"
                conn.exec_driver_sql(f"ALTER TABLE feedback ADD COLUMN {column} {kind}")
                conn.exec_driver_sql(
                    f"UPDATE feedback SET {column} = (SELECT p.{column} FROM predictions p "
                    "WHERE p.prediction_id = feedback.prediction_id)"
                )
            for index in feedback.indexes:
                index.create(conn, checkfirst=True)
    except sa.exc.DBAPIError:
        if "model_name" not in _columns(engine, feedback):
            raise


def _columns(engine: sa.Engine, table: sa.Table) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table.name)}


# Column names are PredictionRow's fields, in the order a row's values are sent to the database.
LOGGED_COLUMNS = tuple(field.name for field in fields(PredictionRow))
