"""An older log brought up to date in place, idempotent and safe for processes that race to do it.

Labels learned their model, sender and example over releases; the log went from a row per record
to a row per request (``prediction_batches``). PostgreSQL keeps a batch's arrays uncompressed.
"""

from __future__ import annotations

import sqlalchemy as sa

from serving.store.tables import LOGGED_COLUMNS, feedback


def upgrade(engine: sa.Engine) -> None:
    """Bring an older log up to date: each label's model, sender and example; requests as rows.

    Idempotent and safe to race: a process that finds the columns already there does nothing,
    and one that loses the race to add them sees the winner's columns on its second look.
    """
    _add_model(engine)
    for column in ("key_id", "withdrawn_at", "predicted_at", "features", "prediction"):
        if column in _columns(engine, feedback.name):
            continue
        kind = feedback.c[column].type.compile(engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE feedback ADD COLUMN {column} {kind}")
        except sa.exc.DBAPIError:
            if column not in _columns(engine, feedback.name):
                raise
    _batch_records(engine)


_RECORDS = "predictions"
"""The table of a log written a row per record, before ``prediction_batches``."""


def _batch_records(engine: sa.Engine) -> None:
    """Move a log written a row per record into batches of one, each under its record's id.

    In one transaction: the labels take their examples, every record becomes a batch (its id's
    last four digits its ordinal), and the old table goes. All in SQL, so a million rows move in
    the database, not through Python.
    """
    if not sa.inspect(engine).has_table(_RECORDS):
        return
    sqlite = engine.dialect.name == "sqlite"

    def one(column: str) -> str:  # a record's JSON value as an array of one
        return f"'[' || CAST({column} AS TEXT) || ']'"

    find = "instr" if sqlite else "strpos"
    digit = "(" + find + "('0123456789abcdef', substr(prediction_id, {}, 1)) - 1) * {}"
    ordinal = " + ".join(digit.format(29 + k, 16 ** (3 - k)) for k in range(4))
    violations = one("violations") if "violations" in _columns(engine, _RECORDS) else "NULL"
    try:
        with engine.begin() as conn:
            odd = conn.exec_driver_sql(
                f"SELECT prediction_id FROM {_RECORDS} WHERE length(prediction_id) != 32 "
                "OR lower(prediction_id) != prediction_id LIMIT 1"
            ).first()
            if odd is not None:
                raise ValueError(f"cannot batch the log: {odd[0]!r} is not a prediction id")
            conn.exec_driver_sql(
                "UPDATE feedback SET predicted_at = p.created_at, features = p.features, "
                f"prediction = p.prediction FROM {_RECORDS} p "
                "WHERE p.prediction_id = feedback.prediction_id"
            )
            conn.exec_driver_sql(
                f"INSERT INTO prediction_batches ({', '.join(LOGGED_COLUMNS)}) "
                "SELECT substr(prediction_id, 1, 28), created_at, model_name, model_version, "
                f"{one('features')}, {one('prediction')}, {one('probabilities')}, {violations}, "
                f"1, {ordinal} FROM {_RECORDS}"
            )
            # The labels' foreign key goes with it (SQLite enforces none: ``engine``).
            conn.exec_driver_sql(f"DROP TABLE {_RECORDS}" + ("" if sqlite else " CASCADE"))
    except sa.exc.DBAPIError:
        if sa.inspect(engine).has_table(_RECORDS):
            raise


def _add_model(engine: sa.Engine) -> None:
    """The labelled prediction's model and version, copied onto a log written before them."""
    if "model_name" in _columns(engine, feedback.name):
        return
    try:
        with engine.begin() as conn:
            for column in ("model_name", "model_version"):
                kind = f"VARCHAR({feedback.c[column].type.length}) NOT NULL DEFAULT ''"
                conn.exec_driver_sql(f"ALTER TABLE feedback ADD COLUMN {column} {kind}")
                conn.exec_driver_sql(
                    f"UPDATE feedback SET {column} = (SELECT p.{column} FROM {_RECORDS} p "
                    "WHERE p.prediction_id = feedback.prediction_id)"
                )
            for index in feedback.indexes:
                index.create(conn, checkfirst=True)
    except sa.exc.DBAPIError:
        if "model_name" not in _columns(engine, feedback.name):
            raise


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def store_uncompressed(engine: sa.Engine) -> None:
    """On PostgreSQL, a batch's arrays stored as they are.

    Its default compression cost the server twice the CPU of the insert itself (3.4 against 1.8
    ms per 100-record batch, measured), and a log row was never compressed before batches (too
    short to be).
    """
    if engine.dialect.name == "sqlite":
        return
    with engine.begin() as conn:
        compressed = conn.exec_driver_sql(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'prediction_batches'::regclass"
            " AND attstorage = 'x'"  # extended: compressed, then moved out of line
        ).scalars()
        for column in list(compressed):
            conn.exec_driver_sql(
                f"ALTER TABLE prediction_batches ALTER {column} SET STORAGE EXTERNAL"
            )
