"""The prediction log and its ground-truth feedback, on SQLite or PostgreSQL by URL.

One SQLAlchemy Core implementation serves both backends, so the embedded default and the
production stack run the same statements. Inserts are idempotent on ``prediction_id``: a batch
replayed from the service's spool after an outage never lands twice. It lives on the serving side
(the service writes here) and the training side reads it (the feedback assets and the sensor), so a
bento carries it without any of the Dagster code location. The tables are in ``tables``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from serving.store.engine import BUSY_WAIT_MS, PROBE_WAIT_MS, make_engine
from serving.store.ids import batch_of
from serving.store.labelling import Outcome, store_labels
from serving.store.pg_copy import COPY_SQL, copy_predictions
from serving.store.tables import (
    LOGGED_COLUMNS,
    Labelled,
    LabelsSince,
    Logged,
    PredictionBatch,
    PredictionRow,
    feedback,
    label_role_key,
    metadata,
    prediction_batches,
)
from serving.store.upgrade import store_uncompressed, upgrade

# Rows in one multi-row INSERT on PostgreSQL: 10000 parameters, well inside the protocol's 65535.
_ROWS_PER_STATEMENT = 1000

_BATCHES = prediction_batches.c
_LABELS = feedback.c


class PredictionStore:
    """Predictions and feedback in one database.

    ``log_writer=True`` is for the service's prediction log, which spools a batch that fails
    and calls :meth:`checkpoint` itself. SQLite otherwise folds its write-ahead log back into the
    database inside whichever commit crosses 1000 pages, and that commit's requests wait for it
    (commit p90 10 ms instead of 6, measured); on PostgreSQL it skips the liveness ping before
    each commit (a round trip, half the CPU of a one-row commit): a dead connection fails that
    batch into the spool and the pool replaces it.
    """

    def __init__(self, url: str, log_writer: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, log_writer)
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._insert = (sqlite if self._sqlite else postgresql).insert
        mark = "?" if self._sqlite else "%s"  # the drivers' placeholders
        self._row_marks = f"({', '.join(mark for _ in LOGGED_COLUMNS)})"
        self._insert_one = self._insert_sql(1)  # SQLite's statement for every batch

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database without blocking writers (PASSIVE)."""
        if self._sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def probe(self) -> None:
        """Raise unless the store takes a write now (the service's readiness).

        SQLite rewrites its header, so a full disk or a held lock fails; PostgreSQL answers a query.
        """
        with self.engine.begin() as conn:
            if not self._sqlite:
                conn.exec_driver_sql("SELECT 1")
                return
            # Briefly: a probe must answer within a load balancer's probe timeout.
            conn.exec_driver_sql(f"PRAGMA busy_timeout={PROBE_WAIT_MS}")
            try:
                conn.exec_driver_sql("PRAGMA user_version = 1")
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")

    def create_schema(self) -> None:
        """Create missing tables and bring an older log's up to date (idempotent)."""
        metadata.create_all(self.engine)
        upgrade(self.engine)
        store_uncompressed(self.engine)

    def insert_batches(self, batches: Iterable[PredictionBatch]) -> None:
        """Insert in one transaction, skipping batches already logged."""
        self.insert_logged([batch.logged() for batch in batches])

    def insert_predictions(self, rows: Iterable[PredictionRow]) -> None:
        """Insert records each as a batch of one, under its own id (as above)."""
        self.insert_batches(PredictionBatch.of(row) for row in rows)

    def insert_logged(self, values: list[Logged]) -> None:
        """Insert batches already in the log's columns (``PredictionBatch.logged``), as above."""
        with self.engine.connect() as conn:
            self.insert_on(conn, values)

    def insert_on(self, conn: sa.Connection, values: list[Logged]) -> None:
        """Insert batches on a connection the caller holds, as above; commit or roll back.

        The log writer keeps one connection for its commits: checking one out of the pool and
        back for each cost as much CPU as the insert itself (0.87 against 0.42-0.49 ms per
        100-record batch on SQLite, measured). Plain SQL and tuples go straight to the driver:
        SQLAlchemy's compiler and per-column bind processing cost more than the insert. SQLite
        prepares the one-row statement once and steps it per batch. PostgreSQL takes the group
        by COPY (``pg_copy``), which cannot skip rows, so a group holding a batch already logged
        (a replay, or a group sent again) is inserted again with ``ON CONFLICT DO NOTHING``.
        Driver errors are raised as SQLAlchemy's, as every other call of the store raises them.
        """
        if not values:
            return
        values = list({value[0]: value for value in values}.values())  # a batch sent twice
        dialect = self.engine.dialect
        dbapi, raw = dialect.loaded_dbapi, conn.connection.dbapi_connection
        statement = self._insert_one
        try:
            if self._sqlite:
                raw.cursor().executemany(statement, values)
            else:
                try:
                    statement = COPY_SQL
                    copy_predictions(raw, values)
                except dbapi.IntegrityError:
                    raw.rollback()
                    cursor = raw.cursor()
                    for start in range(0, len(values), _ROWS_PER_STATEMENT):
                        chunk = values[start : start + _ROWS_PER_STATEMENT]
                        statement = self._insert_sql(len(chunk))
                        cursor.execute(statement, tuple(chain(*chunk)))
            raw.commit()
        except dbapi.Error as exc:
            with contextlib.suppress(dbapi.Error):
                raw.rollback()
            if dialect.is_disconnect(exc, raw, None):
                conn.invalidate(exc)  # not back into the pool
            raise sa.exc.DBAPIError.instance(
                statement, None, exc, dbapi.Error, dialect=dialect
            ) from exc

    def _insert_sql(self, rows: int) -> str:
        return (
            f"INSERT INTO prediction_batches ({', '.join(LOGGED_COLUMNS)}) "
            f"VALUES {', '.join(self._row_marks for _ in range(rows))} "
            "ON CONFLICT (batch_id) DO NOTHING"
        )

    def add_feedback(
        self, model_name: str, prediction_id: str, ground_truth: Any, key_id: str | None = None
    ) -> Labelled:
        """Attach one label; raise if the id is unknown, another model's, or labelled.

        One label is a batch of one (:meth:`add_labels`), with its refusal raised.
        """
        (outcome,) = self.add_labels(model_name, [(prediction_id, ground_truth)], key_id)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def add_labels(
        self, model_name: str, labels: Sequence[tuple[str, Any]], key_id: str | None = None
    ) -> list[Outcome]:
        """Attach ground truth to predictions, in one transaction; one outcome per label.

        ``key_id`` names the API key that sent them (None: not known, as for labels stored before
        keys were recorded), so a leaked key's labels can be withdrawn.

        The same label sent again is accepted as stored (``new`` False): a retry after a lost
        answer must not look like a conflict.

        One log may hold several models' predictions (the embedded default shares one file), and a
        label is only meaningful for the model that made the prediction: a regression value must
        never land as another model's class.

        The challenger's shadow answer to the request comes back too, for the live comparison.
        """
        with self.engine.begin() as conn:
            return store_labels(conn, self._insert, model_name, labels, key_id)

    def prediction(self, prediction_id: str) -> PredictionRow | None:
        """One logged prediction, or None."""
        found = batch_of(prediction_id)
        if found is None:
            return None
        batch_id, ordinal = found
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(prediction_batches).where(_BATCHES.batch_id == batch_id)
            ).first()
        if row is None:
            return None
        batch = PredictionBatch.from_row(row)
        i = ordinal - batch.first_ordinal
        return batch.row(i) if 0 <= i < len(batch.predictions) else None

    def oldest_batches(self, limit: int) -> list[PredictionBatch]:
        """The earliest logged batches (the spool replays in this order)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(prediction_batches).order_by(_BATCHES.created_at).limit(limit)
            ).all()
        return [PredictionBatch.from_row(row) for row in rows]

    def delete_batches(self, ids: list[str]) -> None:
        """Forget batches (the spool, once they reached the database)."""
        with self.engine.begin() as conn:
            conn.execute(prediction_batches.delete().where(_BATCHES.batch_id.in_(ids)))

    def count_predictions(self, model_name: str | None = None) -> int:
        """How many predictions are logged (for one model, or all)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(_BATCHES.records), 0))
        if model_name is not None:
            query = query.where(_BATCHES.model_name == model_name)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def versions_served(self, model_name: str, since: float = 0.0) -> dict[str, int]:
        """Predictions logged per model version (those made after ``since``, a time)."""
        query = (
            sa.select(_BATCHES.model_version, sa.func.sum(_BATCHES.records))
            .where(_BATCHES.model_name == model_name, _BATCHES.created_at > since)
            .group_by(_BATCHES.model_version)
        )
        with self.engine.connect() as conn:
            return {str(v): int(n) for v, n in conn.execute(query).all()}

    def labelled_since(self, model_name: str, after: float) -> LabelsSince:
        """The labels that arrived after ``after`` (a received_at time); times ``after`` if none."""
        received, kept = feedback.c.received_at, feedback.c.withdrawn_at.is_(None)
        query = sa.select(sa.func.count(), sa.func.min(received), sa.func.max(received)).where(
            feedback.c.model_name == model_name, received > after, kept
        )
        with self.engine.connect() as conn:
            count, first, latest = conn.execute(query).one()
        return LabelsSince(int(count), float(first or after), float(latest or after))

    def labelled(self, model_name: str) -> pd.DataFrame:
        """Every labelled prediction of a model, oldest label first.

        Columns: id, version, times, features, prediction, label, and the key that sent the label
        (None for labels stored before keys were recorded).
        """
        return self.frame(
            sa.select(
                _LABELS.prediction_id,
                _LABELS.model_version,
                _LABELS.predicted_at.label("created_at"),
                _LABELS.features,
                _LABELS.prediction,
                _LABELS.ground_truth,
                _LABELS.received_at,
                _LABELS.key_id,
            )
            .where(_LABELS.model_name == model_name, _LABELS.withdrawn_at.is_(None))
            .order_by(_LABELS.received_at)
        )

    def outcomes(self, model_name: str, version: str, latest: int | None = None) -> pd.DataFrame:
        """What one version predicted and what its ``latest`` labels (all if None) said.

        Its live metric's only inputs, newest label first; the features, most of a row's bytes,
        stay in the database.
        """
        return self.frame(
            sa.select(_LABELS.model_version, _LABELS.prediction, _LABELS.ground_truth)
            .where(
                _LABELS.model_name == model_name,
                _LABELS.model_version == str(version),
                _LABELS.withdrawn_at.is_(None),
            )
            .order_by(_LABELS.received_at.desc())
            .limit(latest)
        )

    def role_secret(self) -> bytes:
        """The log's label-role secret, made on first use (the first maker wins a race)."""
        with self.engine.begin() as conn:
            insert = self._insert(label_role_key).values(id=1, secret=secrets.token_hex(32))
            conn.execute(insert.on_conflict_do_nothing(index_elements=["id"]))
            return conn.execute(sa.select(label_role_key.c.secret)).scalar_one().encode()

    def frame(self, query: sa.Select) -> pd.DataFrame:
        """A query's rows as a frame, its columns named as selected."""
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame(rows, columns=list(query.selected_columns.keys()))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
