"""A request's records are logged as an array per field and read back as they were sent."""

from __future__ import annotations

import sqlite3
import time

import orjson
import pytest

from serving.log.protocol import decode_batches, encode_batches
from serving.store.columns import decode_records
from serving.store.ids import new_batch_id
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch

SAME = [{"a": 1.5, "b": "x", "c": None}, {"a": -2.0, "b": "y", "c": 3}]
PROBABILITIES = [{"0": 0.25, "1": 0.75}, {"0": 1.0, "1": 0.0}]


def _logged(tmp_path, features: list, probabilities: list | None = None) -> tuple[object, dict]:
    """What the log holds for one batch: the batch read back, and its raw columns' JSON."""
    store = PredictionStore(f"sqlite:///{tmp_path / 'log.db'}")
    store.create_schema()
    batch = PredictionBatch(
        new_batch_id(), time.time(), "m", "1", features, list(range(len(features))), probabilities
    )
    store.insert_logged([batch.logged()])
    [read] = store.oldest_batches(10)
    with sqlite3.connect(tmp_path / "log.db") as conn:
        raw = conn.execute("SELECT features, probabilities FROM prediction_batches").fetchone()
    return read, {"features": orjson.loads(raw[0]), "probabilities": orjson.loads(raw[1] or "null")}


def test_records_with_the_same_fields_are_kept_as_an_array_per_field(tmp_path):
    read, raw = _logged(tmp_path, SAME, PROBABILITIES)
    assert raw["features"] == {"a": [1.5, -2.0], "b": ["x", "y"], "c": [None, 3]}
    assert raw["probabilities"] == {"0": [0.25, 1.0], "1": [0.75, 0.0]}
    assert read.features == SAME and read.probabilities == PROBABILITIES
    assert [row.features for row in read.rows()] == SAME


@pytest.mark.parametrize(
    "features",
    [
        [{"a": 1.0, "b": "x"}, {"a": 2.0}],  # a gap sent as an absent field
        [{"a": 1.0, "b": "x"}, {"a": 2.0, "z": "x"}],  # as many fields, not the same
        [{"a": 1.0}, {"a": 2.0, "b": "x"}],  # one more
        [{}, {}],  # no field at all: the count of records still stands
    ],
    ids=["absent", "other", "more", "empty"],
)
def test_records_whose_fields_differ_are_kept_one_object_each(tmp_path, features):
    read, raw = _logged(tmp_path, features)
    assert raw["features"] == features
    assert read.features == features and len(read.rows()) == len(features)


def test_a_log_written_an_object_per_record_reads_as_before(tmp_path):
    read, _ = _logged(tmp_path, SAME)
    with sqlite3.connect(tmp_path / "log.db") as conn:  # as every log was written before
        conn.execute("UPDATE prediction_batches SET features = ?", [orjson.dumps(SAME).decode()])
    store = PredictionStore(f"sqlite:///{tmp_path / 'log.db'}")
    assert store.prediction(read.prediction_ids[1]).features == SAME[1]


def test_records_of_one_field_are_kept_as_one_array(tmp_path):
    read, raw = _logged(tmp_path, [{"a": 1}, {"a": "x"}, {"a": None}])
    assert raw["features"] == {"a": [1, "x", None]}
    assert read.features == [{"a": 1}, {"a": "x"}, {"a": None}]


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"a": 1.5, "b": "x", "c": null}, {"a": -2.0, "b": "y", "c": 3}]}',
        # As a client may send it: spaced, escaped, fields in another order in one record.
        b'{ "records" :[ {"a":1.50e0,"b":"\\u0078","c":null},\n{"c":3,"b":"y","a":-2.0} ] }',
        b'{"records": [{"a": 1.5}, {"a": -2.0, "b": "y"}]}',  # fields differ: one object each
    ],
)
def test_a_request_s_own_body_is_laid_out_by_the_writer_as_the_service_would(body):
    records = orjson.loads(body)["records"]  # what the service answered
    batch = PredictionBatch(new_batch_id(), time.time(), "m", "1", records, [0, 1], PROBABILITIES)
    [laid_out] = decode_batches(encode_batches([(batch, body)]))
    assert laid_out == batch.logged()
    assert decode_records(orjson.loads(laid_out[4])) == records
