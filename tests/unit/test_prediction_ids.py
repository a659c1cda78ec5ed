"""Prediction ids: valid UUIDv7, unique, and ordered by the millisecond they were made in."""

from __future__ import annotations

import time
import uuid

from serving.log.ids import new_prediction_id


def test_ids_are_unique_uuid7_and_sort_by_time():
    first = [new_prediction_id() for _ in range(50_000)]
    time.sleep(0.002)
    later = new_prediction_id()
    assert len(set(first)) == len(first)
    parsed = uuid.UUID(later)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert len(later) == 32
    assert all(later > earlier for earlier in first)
    assert abs(int(later[:12], 16) / 1000 - time.time()) < 1  # the prefix is Unix milliseconds
