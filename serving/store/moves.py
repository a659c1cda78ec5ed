"""Every move of the ``champion`` and ``challenger`` aliases, recorded: from, to, when, by, why.

MLflow keeps no alias history (mlflow/mlflow#2169), and its alias event does not carry the
previous version, so "who moved champion, from which version, and why" has no answer there. Every
move (the gate in a run, ``mlserve promote``, ``mlserve rollback``) goes through
``serving.registry.move_alias``, which records it here, in the project's operational database
(SQLite on the embedded default, PostgreSQL in production), inside a transaction that commits only
after the alias moved: a move that failed leaves no record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import EllipsisType
from typing import Any

import sqlalchemy as sa

from serving.store.notices import announce
from serving.store.predictions import PredictionStore
from serving.store.tables import challenger_moves, champion_moves

TABLES = {"champion": champion_moves, "challenger": challenger_moves}
"""Each alias mlserve moves, and the table recording its moves."""

ROLLBACK_OF = "rollback_of"
"""The evidence key a rollback names the version it undid by."""


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

    @property
    def rolls_back(self) -> str | None:
        """The version this move rolled back, if it was a rollback (by hand or by baking).

        A rollback returns to a version that served before: it is not watched like a promotion.
        """
        return self.evidence.get(ROLLBACK_OF)

    def as_dict(self) -> dict[str, Any]:
        """The move as JSON-ready data."""
        return asdict(self)


class StaleMove(RuntimeError):
    """Another move of the alias came between a decision and its move.

    The gate, baking and the shadow each judge a version against the one serving; if the alias
    moved meanwhile (a shadow promotion while a retraining ran, say), their evidence is about
    another pairing and must not move it.
    """


@contextmanager
def recording(
    store: PredictionStore,
    move: Move,
    alias: str = "champion",
    replacing: str | EllipsisType | None = ...,
) -> Iterator[None]:
    """Insert ``move``, run the body (which moves the alias), then commit.

    With ``replacing`` (the version the mover judged against; None: no version yet), raise
    ``StaleMove`` unless the newest recorded move still went there, checked under a lock held
    to the commit, so of two movers judging against the same version only the first moves.
    ``...``, for an operator's moves: whatever the alias names.

    The body's exception rolls the row back; a commit that fails raises after the body ran, so
    the caller can put the alias back.
    """
    table = TABLES[alias]
    with store.engine.connect() as conn:
        transaction = conn.begin()
        if replacing is not ...:
            _lock(conn, table, move.model_name)
            newest = conn.execute(_newest(table, move.model_name)).scalar() or None
            if newest != replacing:
                transaction.rollback()
                were = f"v{replacing}" if replacing else "none"
                raise StaleMove(
                    f"{move.model_name}'s {alias} moved to v{newest} since the decision "
                    f"against {were}: not moved to v{move.to_version or '-'}"
                )
        row = asdict(move) | {"evidence": json.dumps(move.evidence, default=str)}
        conn.execute(table.insert().values(**row))
        announce(conn, move.model_name)  # delivered at the commit, to every replica
        yield
        transaction.commit()


def _lock(conn: sa.Connection, table: sa.Table, model_name: str) -> None:
    """Hold the model's moves of one alias until the transaction ends."""
    if conn.dialect.name == "postgresql":
        key = sa.func.hashtext(f"{table.name}:{model_name}")
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    else:  # SQLite: a write takes the database's write lock, which other writers wait for
        conn.execute(table.update().where(sa.false()).values(model_name=model_name))


def _newest(table: sa.Table, model_name: str) -> sa.Select:
    return (
        sa.select(table.c.to_version)
        .where(table.c.model_name == model_name)
        .order_by(table.c.id.desc())
        .limit(1)
    )


def latest(store: PredictionStore, model_name: str, alias: str = "champion") -> str | None:
    """The version the newest recorded move of the model's ``alias`` went to, if any.

    None too when the newest move of ``challenger`` stopped the shadow.
    """
    with store.engine.connect() as conn:
        return conn.execute(_newest(TABLES[alias], model_name)).scalar() or None


def history(
    store: PredictionStore, model_name: str, last: int | None = None, alias: str = "champion"
) -> list[Move]:
    """The recorded moves of the model's ``alias`` (the ``last`` ones if given), oldest first."""
    table = TABLES[alias]
    query = (
        sa.select(table)
        .where(table.c.model_name == model_name)
        .order_by(table.c.id.desc())
        .limit(last)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()[::-1]
    return [
        Move(
            **{k: v for k, v in row.items() if k != "id"}
            | {"evidence": json.loads(row["evidence"])}
        )
        for row in rows
    ]
