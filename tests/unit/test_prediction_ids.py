"""Prediction ids: valid UUIDv7, unique, and ordered by the millisecond they were made in."""

from __future__ import annotations

import time
import uuid

from serving.log.ids import new_prediction_id, new_prediction_ids


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


def test_a_batch_of_ids_is_as_unique_and_as_valid_as_ids_made_one_by_one():
    batch = new_prediction_ids(50_000)
    assert len(set(batch)) == len(batch) == 50_000
    for made in batch[:100] + batch[-100:]:
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    # The random bits differ throughout: one read of noise, cut into distinct slices.
    assert len({made[13:16] for made in batch}) > 4000  # 12 random bits: ~4096 values
    time.sleep(0.002)
    assert all(new_prediction_id() > made for made in batch)
