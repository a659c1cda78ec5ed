"""Ground truth stored a batch at a time: one lookup and one insert, whatever the batch's size.

A batch of labels used to cost a lookup and an insert per item: 1000 labels for unknown ids were
3000 statements, past a 2 s request deadline on a loaded machine (a fuzzer found it as a 504).
Here the ids are looked up together, the new labels inserted together, and the insert says which
rows it added (``RETURNING``), so a label another request stored a moment earlier is told apart
from one this batch stored, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from serving.store.ids import batch_of
from serving.store.tables import (
    DuplicateFeedbackError,
    Labelled,
    PredictionBatch,
    PredictionRow,
    UnknownPredictionError,
    feedback,
    prediction_batches,
    shadow_predictions,
)

# Ids per statement: well inside SQLite's 32766 parameters and PostgreSQL's 65535 (6 a label).
_CHUNK = 500

Outcome = Labelled | UnknownPredictionError | DuplicateFeedbackError
"""What became of one label: stored (or already stored), or why not."""


def store_labels(
    conn: sa.Connection,
    insert: Callable[[sa.Table], Any],
    model_name: str,
    labels: Sequence[tuple[str, Any]],
    key_id: str | None,
) -> list[Outcome]:
    """Store ``(prediction_id, ground_truth)`` pairs for ``model_name``; one outcome per pair.

    Within a batch as across batches, a label for an id is stored once: the first of the batch's
    labels for an id is the one offered, the same label again answers as stored (``new`` False),
    another label as a conflict. ``insert`` is the dialect's (it knows ``ON CONFLICT``).
    """
    known = _known(conn, model_name, list(dict.fromkeys(pid for pid, _ in labels)))
    shadows = _shadows(conn, list(known))
    offered: dict[str, Any] = {}
    for pid, truth in labels:
        if pid in known:
            offered.setdefault(pid, truth)
    added = _insert(conn, insert, model_name, offered, known, key_id)
    stored = dict(offered) | _stored(conn, [pid for pid in offered if pid not in added])
    outcomes: list[Outcome] = []
    for pid, truth in labels:
        row = known.get(pid)
        if row is None:
            outcomes.append(UnknownPredictionError(pid))
        elif stored[pid] != truth:
            outcomes.append(DuplicateFeedbackError(pid))
        else:
            new = pid in added
            added.discard(pid)  # the same label again in this batch is a retry, not new
            outcomes.append(Labelled(row.model_version, row.prediction, new, shadows.get(pid)))
    return outcomes


def _known(conn: sa.Connection, model_name: str, ids: list[str]) -> dict[str, PredictionRow]:
    """The model's logged predictions among ``ids``: their batches read once each."""
    wanted: dict[str, list[tuple[str, int]]] = {}
    for pid in ids:
        if (found := batch_of(pid)) is not None:
            wanted.setdefault(found[0], []).append((pid, found[1]))
    batch_ids = list(wanted)
    known: dict[str, PredictionRow] = {}
    for start in range(0, len(batch_ids), _CHUNK):
        rows = conn.execute(
            sa.select(prediction_batches).where(
                prediction_batches.c.batch_id.in_(batch_ids[start : start + _CHUNK]),
                prediction_batches.c.model_name == model_name,
            )
        )
        for row in rows:
            batch = PredictionBatch.from_row(row)
            for pid, ordinal in wanted[batch.batch_id]:
                if 0 <= (i := ordinal - batch.first_ordinal) < len(batch.predictions):
                    known[pid] = batch.row(i)
    return known


def _shadows(conn: sa.Connection, ids: list[str]) -> dict[str, tuple[str, Any]]:
    """The challenger's version and shadow answer for each of ``ids`` it answered."""
    shadow = shadow_predictions.c
    found: dict[str, tuple[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(shadow.prediction_id, shadow.model_version, shadow.prediction).where(
            shadow.prediction_id.in_(ids[start : start + _CHUNK])
        )
        for pid, version, answer in conn.execute(query):
            found.setdefault(pid, (version, answer))
    return found


def _insert(
    conn: sa.Connection,
    insert: Callable[[sa.Table], Any],
    model_name: str,
    offered: dict[str, Any],
    known: dict[str, PredictionRow],
    key_id: str | None,
) -> set[str]:
    """Insert the offered labels an id does not have yet; the ids this insert added."""
    now = time.time()
    values = [
        {
            "prediction_id": pid,
            "ground_truth": truth,
            "received_at": now,
            "model_name": model_name,
            "model_version": known[pid].model_version,
            "key_id": key_id,
            "predicted_at": known[pid].created_at,
            "features": known[pid].features,
            "prediction": known[pid].prediction,
        }
        for pid, truth in offered.items()
    ]
    added: set[str] = set()
    for start in range(0, len(values), _CHUNK):
        statement = (
            insert(feedback)
            .values(values[start : start + _CHUNK])
            .on_conflict_do_nothing(index_elements=["prediction_id"])
            .returning(feedback.c.prediction_id)
        )
        added.update(conn.execute(statement).scalars())
    return added


def _stored(conn: sa.Connection, ids: list[str]) -> dict[str, Any]:
    """The labels already stored for ``ids``."""
    stored: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(feedback.c.prediction_id, feedback.c.ground_truth).where(
            feedback.c.prediction_id.in_(ids[start : start + _CHUNK])
        )
        stored.update((pid, truth) for pid, truth in conn.execute(query))
    return stored
