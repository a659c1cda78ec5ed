"""Prediction ids: valid UUIDv7, unique, time-ordered; a request's ids share its batch's."""

from __future__ import annotations

import time
import uuid

from serving.store.ids import MAX_RECORDS, batch_of, new_batch_id, new_prediction_id, prediction_id


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


def test_a_batchs_ids_are_valid_distinct_and_lead_back_to_it():
    batches = [new_batch_id() for _ in range(20_000)]
    assert len(set(batches)) == len(batches)
    # The random bits differ throughout, not only in the clock's digits.
    assert len({made[13:16] for made in batches}) > 3500  # 12 random bits: ~4096 values
    batch = batches[-1]
    ids = [prediction_id(batch, i) for i in (0, 1, 255, MAX_RECORDS - 1)]
    assert len(set(ids)) == 4
    for made, ordinal in zip(ids, (0, 1, 255, MAX_RECORDS - 1), strict=True):
        parsed = uuid.UUID(made)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert made.startswith(batch)
        assert batch_of(made) == (batch, ordinal)


def test_strings_no_id_can_be_name_no_batch():
    made = new_prediction_id()
    for odd in ("", made[:-1], made + "0", made.upper(), made[:-1] + "g", "+" + made[1:]):
        assert batch_of(odd) is None, odd
