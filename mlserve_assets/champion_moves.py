"""Every move of the ``champion`` alias, recorded: from, to, when, by what, why, on what evidence.

MLflow keeps no alias history (mlflow/mlflow#2169), and its alias event does not carry the
previous version, so "who moved champion, from which version, and why" has no answer there. Every
move goes through :func:`move_champion`, whichever moves it (the gate in a run, ``mlserve
promote``, ``mlserve rollback``), and is a row in ``champion_moves`` in the project's operational
database (the prediction store: SQLite on the embedded default, PostgreSQL in production). The
row is inserted in a transaction that commits only after the alias moved, so a move that failed
leaves no record, and a record that cannot be committed puts the alias back.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from mlflow import MlflowClient

from serving.contract import CHAMPION, champion
from serving.prediction_store import PredictionStore

logger = logging.getLogger(__name__)

_metadata = sa.MetaData()
moves = sa.Table(
    "champion_moves",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(128), nullable=False, index=True),
    sa.Column("from_version", sa.String(32), nullable=True),
    sa.Column("to_version", sa.String(32), nullable=False),
    sa.Column("moved_at", sa.Float, nullable=False),
    sa.Column("moved_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Move:
    """One move of the alias."""

    model_name: str
    from_version: str | None
    to_version: str
    moved_at: float
    moved_by: str
    reason: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The move as JSON-ready data."""
        return asdict(self)


def move_champion(
    client: MlflowClient,
    store: PredictionStore,
    model_name: str,
    version: str,
    *,
    by: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
) -> Move:
    """Point ``champion`` at ``version`` and record the move; the one way the alias moves."""
    _metadata.create_all(store.engine)
    current = champion(client, model_name)
    move = Move(
        model_name=model_name,
        from_version=None if current is None else str(current.version),
        to_version=str(version),
        moved_at=time.time(),
        moved_by=by,
        reason=reason,
        evidence=evidence or {},
    )
    with store.engine.connect() as conn:
        transaction = conn.begin()
        row = asdict(move) | {"evidence": json.dumps(move.evidence, default=str)}
        conn.execute(moves.insert().values(**row))
        client.set_registered_model_alias(model_name, CHAMPION, move.to_version)
        try:
            transaction.commit()
        except sa.exc.SQLAlchemyError:
            logger.error("recording the move failed: putting %s back", CHAMPION)
            if move.from_version is None:
                client.delete_registered_model_alias(model_name, CHAMPION)
            else:
                client.set_registered_model_alias(model_name, CHAMPION, move.from_version)
            raise
    return move


def history(store: PredictionStore, model_name: str) -> list[Move]:
    """Every recorded move of the model's champion, oldest first."""
    _metadata.create_all(store.engine)
    query = sa.select(moves).where(moves.c.model_name == model_name).order_by(moves.c.id)
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        Move(
            **{k: v for k, v in row.items() if k != "id"}
            | {"evidence": json.loads(row["evidence"])}
        )
        for row in rows
    ]
