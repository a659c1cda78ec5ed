"""The retraining sensor against a real prediction store, MLflow registry and Dagster instance."""

from __future__ import annotations

import shutil
import time
import uuid

import dagster as dg
import pytest
from mlflow import MlflowClient

from harness.project import copy_moves
from mlserve_assets.assembly import build_definitions
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.retrain import build_retrain_sensor
from mlserve_assets.settings import Settings
from mlserve_assets.spec.models import Retrain
from serving.registry import Tag
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow

JOB = "train_breast_cancer"


def _label(store: PredictionStore, n: int, version: str = "1", truth: int = 1) -> float:
    rows = [
        PredictionRow(uuid.uuid4().hex, time.time(), "breast_cancer", version, {"x": i}, 1)
        for i in range(n)
    ]
    store.insert_predictions(rows)
    for row in rows:
        store.add_feedback("breast_cancer", row.prediction_id, truth)
    return store.labelled_since("breast_cancer", 0).latest


class Harness:
    """One model's sensor, its registry (a copy of the trained one) and a Dagster instance."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.defs = build_definitions(settings)
        self.store = PredictionStore(url)
        self.store.create_schema()
        uri = settings.mlflow_tracking_uri
        self.client = MlflowClient(uri, uri)
        self.resources = {
            "prediction_log": PredictionLogResource(url=url),
            "registry": MlflowRegistry(tracking_uri=settings.mlflow_tracking_uri),
        }
        self.instance = dg.DagsterInstance.ephemeral()
        self.spec = next(m for m in _specs(settings) if m.name == "breast_cancer")

    def tick(self, cursor: str | None = None, **retrain: object):
        """One evaluation with the spec's default retraining settings and ``retrain`` on top."""
        spec = self.spec.model_copy(update={"retrain": Retrain(**retrain)})
        sensor = build_retrain_sensor(spec, JOB)
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=cursor
        ) as context:
            return sensor.evaluate_tick(context)

    def run(self, *, failed: bool) -> dg.DagsterRun:
        """A run of the job in the instance, as the daemon would have launched it."""
        run = self.instance.create_run_for_job(self.defs.resolve_job_def(JOB))
        if failed:
            self.instance.report_run_failed(run)
        return run

    def register_held(self, watermark: float, live: float) -> None:
        """A retraining whose challenger the gate held, with what the champion scored live then."""
        champion = self.client.get_model_version_by_alias("breast_cancer", "champion")
        registry = MlflowRegistry(tracking_uri=self.settings.mlflow_tracking_uri)
        with registry.fluent_api():  # the store finds a models:/m-... source through it
            held = self.client.create_model_version(
                "breast_cancer", champion.source, champion.run_id
            )
        for key, value in {
            Tag.GATE: "held",
            Tag.FEEDBACK_WATERMARK: repr(watermark),
            Tag.CHAMPION_LIVE: repr(live),
        }.items():
            self.client.set_model_version_tag("breast_cancer", held.version, key, value)


def _specs(settings: Settings):
    from mlserve_assets.spec.loader import load_specs

    return load_specs(settings.spec_paths)


@pytest.fixture
def harness(trained, tmp_path) -> Harness:
    # A copy of the trained registry: these tests register versions the others must not see.
    shutil.copy(trained.mlflow_tracking_uri.removeprefix("sqlite:///"), tmp_path / "mlflow.db")
    settings = Settings(
        **{**vars(trained), "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    )
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    copy_moves(trained.predictions_url, url, "breast_cancer")  # the champion's recorded move
    h = Harness(settings, url)
    yield h
    h.store.dispose()


def test_below_threshold_skips_and_says_why(harness):
    _label(harness.store, 149)
    tick = harness.tick()
    assert tick.run_requests == []
    assert "149 labelled rows since the last training (need 150, or 30" in tick.skip_message


def test_labels_below_the_threshold_train_once_they_stop(harness):
    _label(harness.store, 40)
    assert harness.tick(quiet_seconds=2).run_requests == []  # they have just come
    time.sleep(2.1)
    [request] = harness.tick(quiet_seconds=2).run_requests
    assert request.tags["mlserve/trigger"].startswith("40 new labelled rows (>= min_quiet_rows")
    assert harness.tick(quiet_seconds=2, min_quiet_rows=41).run_requests == []


def test_at_threshold_requests_one_run_and_the_same_state_gives_the_same_key(harness):
    _label(harness.store, 150)
    first, second = harness.tick(), harness.tick()
    assert len(first.run_requests) == 1
    assert "150 new labelled rows" in first.run_requests[0].tags["mlserve/trigger"]
    # A daemon that restarts before it stored anything evaluates the same state again.
    assert second.run_requests[0].run_key == first.run_requests[0].run_key


def test_no_request_while_a_run_is_in_flight(harness):
    _label(harness.store, 200)
    run = harness.run(failed=False)
    tick = harness.tick()
    assert tick.run_requests == []
    assert f"run {run.run_id} of breast_cancer is in flight" in tick.skip_message


def test_a_failed_run_releases_its_labels_after_the_cooldown(harness):
    _label(harness.store, 200)
    before = harness.tick().run_requests[0].run_key
    harness.run(failed=True)
    cooling = harness.tick(cooldown_seconds=3600)
    assert cooling.run_requests == []
    assert "cooldown" in cooling.skip_message
    retry = harness.tick(cooldown_seconds=0)
    assert len(retry.run_requests) == 1
    assert retry.run_requests[0].run_key != before  # a new key: Dagster would skip the old one


def test_requests_count_for_cooldown_and_cap_before_their_runs_show(harness):
    # The daemon stores the cursor at once; the run it launched may take seconds to appear.
    _label(harness.store, 200)
    first = harness.tick()
    assert len(first.run_requests) == 1
    cooling = harness.tick(first.cursor)
    assert cooling.run_requests == []
    assert "cooldown" in cooling.skip_message
    capped = harness.tick(first.cursor, cooldown_seconds=0, max_runs_per_day=1)
    assert "cap: 1 runs in the last 24 h" in capped.skip_message
    assert len(harness.tick(first.cursor, cooldown_seconds=0).run_requests) == 1


def test_the_daily_cap_stops_requests(harness):
    _label(harness.store, 200)
    for _ in range(3):
        harness.run(failed=True)
    assert len(harness.tick(cooldown_seconds=0, max_runs_per_day=4).run_requests) == 1
    capped = harness.tick(cooldown_seconds=0, max_runs_per_day=3)
    assert capped.run_requests == []
    assert "cap: 3 runs in the last 24 h" in capped.skip_message


def test_after_a_held_gate_the_live_rule_waits_until_the_metric_is_clearly_worse(harness):
    until = _label(harness.store, 40, truth=0)  # every prediction was 1: live accuracy 0.0
    assert len(harness.tick(min_live_metric=0.85).run_requests) == 1
    harness.register_held(watermark=until, live=0.0)
    _label(harness.store, 5, truth=0)  # new labels, live still 0.0: no worse than at the decision
    backing_off = harness.tick(min_live_metric=0.85)
    assert backing_off.run_requests == []
    assert "back off" in backing_off.skip_message


def test_after_a_held_gate_a_worse_live_metric_retrains_before_the_row_count(harness):
    _label(harness.store, 20, truth=1)
    until = _label(harness.store, 20, truth=0)  # live 0.5 when the gate held
    harness.register_held(watermark=until, live=0.5)
    _label(harness.store, 20, truth=0)  # live now 20/60: clearly worse than 0.5
    tick = harness.tick(min_live_metric=0.85)
    assert len(tick.run_requests) == 1
    assert "live accuracy of v1 is 0.3333" in tick.run_requests[0].tags["mlserve/trigger"]


def test_after_a_held_gate_the_row_count_needs_new_labels(harness):
    until = _label(harness.store, 150)
    harness.register_held(watermark=until, live=1.0)
    assert harness.tick().run_requests == []
    _label(harness.store, 150)
    assert len(harness.tick().run_requests) == 1


def test_the_live_metric_floor_fires_at_its_minimum_labels_not_below(harness):
    _label(harness.store, 29, truth=0)
    assert harness.tick(min_live_metric=0.85).run_requests == []
    _label(harness.store, 1, truth=0)
    tick = harness.tick(min_live_metric=0.85)
    assert "live accuracy of v1 is 0.0000" in tick.run_requests[0].tags["mlserve/trigger"]


def test_the_age_rule_never_fires_without_new_labels(harness):
    old = {"max_age_hours": 1e-9}
    assert harness.tick(**old).run_requests == []
    _label(harness.store, 1)
    tick = harness.tick(**old)
    assert "h old" in tick.run_requests[0].tags["mlserve/trigger"]


def test_the_live_metric_reads_the_latest_window_so_a_shift_shows_through_a_long_history(harness):
    _label(harness.store, 200, truth=1)  # 200 right
    _label(harness.store, 40, truth=0)  # then 40 wrong: 0.833 over all, 0.0 over the last 40
    rules = {"min_live_metric": 0.5, "min_feedback_rows": 1000}
    assert harness.tick(**rules, live_window=300).run_requests == []
    tick = harness.tick(**rules, live_window=40)
    assert "live accuracy of v1 is 0.0000" in tick.run_requests[0].tags["mlserve/trigger"]
