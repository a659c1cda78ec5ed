"""Prediction ids that sort by time: UUID version 7 (RFC 9562) as 32 hex digits.

Random (version 4) ids scatter inserts across the log's primary-key index, so as the log grows each
commit touches pages that are no longer cached: with 167 MB logged, a 3-row commit's p99 was
7.3 ms with version 4 ids and 1.3 ms with these, a 100-row commit's p90 17 ms against 3.6 ms
(measured on SQLite; PostgreSQL's B-tree behaves the same way).

A request's records share one batch id, the first 28 digits, and the last four count them: the log
keeps a request as one row (``serving.store.tables.prediction_batches``) and still finds any one
record by its id. 58 random bits per millisecond keep batches from several replicas apart and
make another request's ids unguessable.
"""

from __future__ import annotations

import os
import time

ORDINAL_DIGITS = 4
MAX_RECORDS = 16**ORDINAL_DIGITS
"""Records one batch id can number."""

_HEX = frozenset("0123456789abcdef")
_VERSION = 0x7 << 76
_VARIANT = 0x2 << 62
_RANDOM = ((1 << 80) - 1) & ~(0xF << 76) & ~(0x3 << 62) & ~(MAX_RECORDS - 1)


def new_batch_id() -> str:
    """A request's 28-digit batch id: 48 bits of Unix milliseconds, version, random, variant."""
    stamp = (time.time_ns() // 1_000_000) << 80 | _VERSION | _VARIANT
    noise = int.from_bytes(os.urandom(10), "big") & _RANDOM
    return f"{stamp | noise:032x}"[:-ORDINAL_DIGITS]


def prediction_id(batch_id: str, ordinal: int) -> str:
    """The id of a batch's ``ordinal``-th record."""
    return f"{batch_id}{ordinal:0{ORDINAL_DIGITS}x}"


def new_prediction_id() -> str:
    """A UUIDv7 for one record: a batch of one."""
    return prediction_id(new_batch_id(), 0)


def batch_of(prediction: str) -> tuple[str, int] | None:
    """The batch id and ordinal a prediction id names, or None for a string no id can be."""
    if len(prediction) != 32 or not _HEX.issuperset(prediction):
        return None
    return prediction[:-ORDINAL_DIGITS], int(prediction[-ORDINAL_DIGITS:], 16)
