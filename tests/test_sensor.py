"""The retraining sensor against a real prediction store and a real MLflow registry."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import pytest

from mlserve_assets.definitions import build_definitions
from mlserve_assets.resources.mlflow_registry import MlflowRegistry
from mlserve_assets.resources.prediction_log import PredictionLogResource
from serving.log_schema import PredictionRow
from serving.prediction_store import PredictionStore


def _label(store: PredictionStore, n: int, version: str = "1", truth: int = 1) -> None:
    rows = [
        PredictionRow(uuid.uuid4().hex, time.time(), "breast_cancer", version, {"x": i}, 1)
        for i in range(n)
    ]
    store.insert_predictions(rows)
    for row in rows:
        store.add_feedback("breast_cancer", row.prediction_id, truth)


@pytest.fixture
def evaluate(trained, tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = PredictionStore(url)
    store.create_schema()
    sensor = build_definitions(trained).resolve_sensor_def("retrain_breast_cancer")
    resources = {
        "prediction_log": PredictionLogResource(url=url),
        "mlflow": MlflowRegistry(tracking_uri=trained.mlflow_tracking_uri),
    }
    instance = dg.DagsterInstance.ephemeral()

    def run(cursor: str | None = None):
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources
        ) as context:
            return sensor.evaluate_tick(context)

    yield store, run
    store.dispose()


def test_below_threshold_skips_and_says_why(evaluate):
    store, run = evaluate
    _label(store, 150)
    tick = run()
    assert tick.run_requests == []
    assert "150 labelled rows since the last training (need 200)" in tick.skip_message


def test_at_threshold_requests_exactly_one_run(evaluate):
    store, run = evaluate
    _label(store, 200)
    tick = run()
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert request.job_name in (None, "train_breast_cancer")
    assert "200 new labelled rows" in request.tags["mlserve/trigger"]
    assert tick.cursor is not None


def test_same_state_twice_requests_nothing_more(evaluate):
    store, run = evaluate
    _label(store, 250)
    first = run()
    assert len(first.run_requests) == 1
    second = run(first.cursor)
    assert second.run_requests == []
    assert "0 labelled rows" in second.skip_message
    _label(store, 200)
    third = run(first.cursor)
    assert len(third.run_requests) == 1
    assert third.run_requests[0].run_key != first.run_requests[0].run_key


def test_a_falling_live_metric_triggers_before_the_row_count(evaluate):
    store, run = evaluate
    _label(store, 40, truth=0)  # every prediction was 1: live accuracy 0.0 < 0.85
    tick = run()
    assert len(tick.run_requests) == 1
    assert "live accuracy of v1 is 0.0000" in tick.run_requests[0].tags["mlserve/trigger"]
