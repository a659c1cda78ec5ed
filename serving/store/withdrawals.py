"""Withdrawing a key's labels: marked, never deleted, and the withdrawal itself recorded.

A leaked feedback key's labels would otherwise stay in every later training. Withdrawn labels
keep their rows (the prediction still has its label, so the same label sent again is a retry, not
a new one) but every reader of labels skips them (``PredictionStore``), and ``label_withdrawals``
says who withdrew which key's labels, when, why, and how many, in the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from serving.store.predictions import PredictionStore
from serving.store.tables import feedback, label_withdrawals


@dataclass(frozen=True)
class Withdrawal:
    """One withdrawal of a key's labels."""

    key_id: str
    withdrawn_at: float
    withdrawn_by: str
    reason: str
    labels: int


def withdraw(store: PredictionStore, key_id: str, *, by: str, reason: str) -> Withdrawal:
    """Withdraw every label ``key_id`` sent that is not withdrawn yet, and record it."""
    now = time.time()
    with store.engine.begin() as conn:
        labels = conn.execute(
            feedback.update()
            .where(feedback.c.key_id == key_id, feedback.c.withdrawn_at.is_(None))
            .values(withdrawn_at=now)
        ).rowcount
        done = Withdrawal(key_id, now, by, reason, labels)
        conn.execute(label_withdrawals.insert().values(**vars(done)))
    return done


def senders(store: PredictionStore) -> dict[str, dict[str, int]]:
    """Labels per key id: how many count and how many were withdrawn."""
    withdrawn = feedback.c.withdrawn_at.is_not(None)
    query = sa.select(
        sa.func.coalesce(feedback.c.key_id, "unknown"),
        sa.func.count(),
        sa.func.sum(sa.case((withdrawn, 1), else_=0)),
    ).group_by(feedback.c.key_id)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {key: {"labels": n - int(w or 0), "withdrawn": int(w or 0)} for key, n, w in rows}
