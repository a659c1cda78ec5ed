"""Prediction ids that sort by time: UUID version 7 (RFC 9562) as 32 hex digits.

Random (version 4) ids scatter inserts across the log's primary-key index, so as the log grows each
commit touches pages that are no longer cached: with 167 MB logged, a 3-row commit's p99 was
7.3 ms with version 4 ids and 1.3 ms with these, a 100-row commit's p90 17 ms against 3.6 ms
(measured on SQLite; PostgreSQL's B-tree behaves the same way). 74 random bits per millisecond
keep ids from several replicas apart.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0x2 << 62
_RANDOM = (1 << 80) - 1 & ~(0xF << 76) & ~(0x3 << 62)


def new_prediction_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then version, random bits and variant."""
    return new_prediction_ids(1)[0]


def new_prediction_ids(count: int) -> list[str]:
    """``count`` UUIDv7s of this millisecond, their random bits read in one system call."""
    stamp = (time.time_ns() // 1_000_000) << 80 | _VERSION | _VARIANT
    noise = os.urandom(10 * count)
    return [
        f"{stamp | int.from_bytes(noise[i : i + 10], 'big') & _RANDOM:032x}"
        for i in range(0, 10 * count, 10)
    ]
