"""The prediction store's batched insert, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from harness.servers import Postgres
from serving.log_schema import PredictionRow
from serving.prediction_store import PredictionStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
    else:
        cluster: Postgres = request.getfixturevalue("postgres")
        url = cluster.create_database(f"store_{uuid.uuid4().hex[:12]}")
    store = PredictionStore(url, log_writer=True)
    store.create_schema()
    yield store
    store.dispose()


def _rows(count: int) -> list[PredictionRow]:
    """Rows of every shape the service logs: labels of several types, scores or none, and text
    that SQL literals and COPY's text format both need escaped."""
    labels = itertools.cycle([1, "yes", 2.5, None, True])
    return [
        PredictionRow(
            prediction_id=uuid.uuid4().hex,
            created_at=1_700_000_000.0 + i,
            model_name="m",
            model_version=str(1 + i % 3),
            features={"a": i * 0.1, "b": -i, "c": 'it\'s "quoted" %s ? \\N back\\slash\t\n\r'},
            prediction=next(labels),
            probabilities={"no": 0.25, "yes": 0.75} if i % 2 else None,
        )
        for i in range(count)
    ]


def test_batches_across_statement_chunks_round_trip_exactly(store: PredictionStore):
    rows = _rows(2500)  # more than one multi-row statement on PostgreSQL
    store.insert_predictions(rows)
    assert store.count_predictions() == 2500
    for row in rows[:5] + rows[995:1005] + rows[-5:]:
        assert store.prediction(row.prediction_id) == row


def test_a_replayed_batch_lands_once(store: PredictionStore):
    rows = _rows(1500)
    store.insert_predictions(rows[:1200])
    store.insert_predictions(rows[900:] + rows[900:910])  # overlap, and repeats inside a batch
    assert store.count_predictions() == 1500
    assert store.versions_served("m") == {"1": 500, "2": 500, "3": 500}
