"""Baking through the real sensor: a worse champion rolled back by itself, a good one kept.

A real SQLite registry and prediction log; the traffic is what the promoted version answers, loaded
and logged as the service loads and logs it, labelled with the true classes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from harness.monitoring import Webhook, alertmanager
from harness.registries import bc_spec, promote_new_version, registry_at
from harness.servers import free_port
from mlserve_assets.cli.status import model_status
from mlserve_assets.resources.alerts import AlertmanagerResource
from mlserve_assets.sensors.bake import build_bake_sensor
from mlserve_assets.spec.models import ModelSpec
from serving.model.artifact import trusted_types
from serving.model.loading import load_version
from serving.registry import Tag, champion
from serving.store.ids import new_prediction_id
from serving.store.moves import ROLLBACK_OF, history
from serving.store.tables import PredictionRow

CANCER = load_breast_cancer(as_frame=True)
# Fitted on the first half; the traffic is the second half, which neither saw.
FIT, TRAFFIC = CANCER.data.iloc[::2], CANCER.data.iloc[1::2]
FIT_Y, TRAFFIC_Y = CANCER.target.iloc[::2], CANCER.target.iloc[1::2]


def _spec(**bake: object) -> ModelSpec:
    return bc_spec(bake=bake)


class Project:
    """A registry and a log with ``good`` as the first champion, and the bake sensor over them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.registry, self.log = registry_at(folder)
        self.good = make_pipeline(StandardScaler(), LogisticRegression()).fit(FIT, FIT_Y)
        self.first = promote_new_version(self.registry, self.log, "bc", self.good, FIT)
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.alerts = AlertmanagerResource()  # none, as on the embedded default

    def promote(self, estimator: object) -> str:
        return promote_new_version(self.registry, self.log, "bc", estimator, FIT)

    def answer_and_label(self, version: str, rows: slice) -> list:
        """The version's answers to ``TRAFFIC[rows]``, logged as the service logs them, labelled."""
        served = load_version(self.registry.client, "bc", version, trusted_types())
        records = TRAFFIC.iloc[rows].to_dict("records")
        scored = served.replay(records)
        logged = [
            PredictionRow(new_prediction_id(), time.time(), "bc", version, r, label, p)
            for r, label, p in zip(records, scored.labels, scored.probabilities, strict=True)
        ]
        self.log.store.insert_predictions(logged)
        for row, truth in zip(logged, TRAFFIC_Y.iloc[rows], strict=True):
            self.log.store.add_feedback("bc", row.prediction_id, int(truth), "owner")
        return scored.labels

    def tick(self, spec: ModelSpec) -> str:
        """One evaluation of the sensor, its cursor kept as the daemon keeps it."""
        resources = {"prediction_log": self.log, "registry": self.registry, "alerts": self.alerts}
        with dg.build_sensor_context(
            instance=self.instance, resources=resources, cursor=self.cursor
        ) as context:
            result = build_bake_sensor(spec).evaluate_tick(context)
            self.cursor = context.cursor
        return result.skip_message or ""

    def served(self) -> str:
        return str(champion(self.registry.client, "bc").version)

    def bake_tag(self, version: str) -> dict:
        tags = self.registry.client.get_model_version("bc", version).tags
        return json.loads(tags[Tag.BAKE])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_a_worse_champion_is_rolled_back_by_itself_with_its_evidence(project):
    spec = _spec(min_labels=30, requests=500)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(FIT, FIT_Y)
    bad = project.promote(stump)
    assert project.served() == bad
    answers = project.answer_and_label(bad, slice(0, 20))
    assert "20 labelled" in project.tick(spec)  # below min_labels: watched, not judged
    assert project.served() == bad

    answers += project.answer_and_label(bad, slice(20, 80))
    said = project.tick(spec)
    assert said.startswith(f"rolled back: v{bad} is worse than v{project.first}"), said
    assert project.served() == project.first
    undo = history(project.log.store, "bc")[-1]
    assert (undo.from_version, undo.to_version) == (bad, project.first)
    assert undo.moved_by == "sensor bake_bc" and undo.rolls_back == bad
    # The evidence, computed independently: the stump's answers and the good model's, same rows.
    judged = slice(0, 60)  # the milestone reached: 60 of 80 labels
    truth = TRAFFIC_Y.iloc[judged]
    assert undo.evidence["labelled"] == 60
    assert undo.evidence[f"v{bad}_accuracy"] == accuracy_score(truth, answers[:60])
    good = project.good.predict(TRAFFIC.iloc[judged])
    assert undo.evidence[f"v{project.first}_accuracy"] == accuracy_score(truth, good)
    assert undo.evidence[ROLLBACK_OF] == bad
    assert project.bake_tag(bad)["outcome"] == "rolled back"
    # The rollback is not watched itself, and a later tick changes nothing.
    assert project.tick(spec).startswith("nothing to watch")
    assert project.served() == project.first


def test_a_good_champion_is_kept_through_its_watch(project):
    spec = _spec(min_labels=30, requests=500, rollback=True)
    better = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(FIT, FIT_Y)
    kept = project.promote(better)
    project.answer_and_label(kept, slice(0, 130))
    said = project.tick(spec)
    assert said.startswith(f"kept: v{kept} holds"), said
    assert project.tick(spec).startswith(f"watching v{kept}")  # the same look is not judged again
    # The watch ends (no time left for late labels): the last look judges every label in it.
    watched = time.time() - history(project.log.store, "bc")[-1].moved_at
    ended = _spec(min_labels=30, requests=500, hours=watched / 3600, late_label_hours=0)
    project.answer_and_label(kept, slice(130, 140))  # after the window: not judged
    said = project.tick(ended)
    assert project.bake_tag(kept)["labelled"] == 130
    assert said.startswith(f"kept: v{kept} holds"), said
    assert project.bake_tag(kept)["final"] is True
    assert project.served() == kept
    assert project.tick(ended) == f"v{kept}'s watch is over"
    with dg.instance_for_test() as instance:
        status = model_status(project.registry.client, project.log, instance, ended)
    assert status["champion"]["baking"]["outcome"] == "kept"


def test_report_only_tags_a_worse_champion_without_moving_it(project):
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(FIT, FIT_Y)
    bad = project.promote(stump)
    project.answer_and_label(bad, slice(0, 60))
    said = project.tick(_spec(min_labels=30, rollback=False))
    assert said.startswith(f"worse: v{bad} is worse"), said
    assert project.served() == bad and project.bake_tag(bad)["outcome"] == "worse"


def _fire(alertmanager: str, name: str, starts: float, **labels: str) -> None:
    """Send Alertmanager a firing alert, as Prometheus sends one."""
    began = datetime.fromtimestamp(starts, UTC).isoformat()
    alert = {
        "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": {"summary": f"{name} for the test"},
        "startsAt": began,
    }
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert]).status_code == 200


def test_an_alert_firing_for_the_new_champion_rolls_it_back(project, tmp_path):
    # Error rate and latency are Prometheus's to judge; baking asks a real Alertmanager.
    spec = _spec(min_labels=30)
    with alertmanager(tmp_path, Webhook()) as url:
        project.alerts = AlertmanagerResource(url=url)
        before = time.time() - 60
        _fire(url, "PredictionLatencyHigh", before, model="bc")  # began before the promotion
        copy = project.promote(project.good)
        _fire(url, "PredictionLatencyHigh", time.time(), model="other")  # another model's
        _fire(url, "LiveAccuracyFalling", time.time(), model="bc")  # not a rollback alert
        time.sleep(1)
        assert "0 answers" in project.tick(spec)
        assert project.served() == copy

        _fire(url, "PredictionErrorRateHigh", time.time())  # the whole service: no model label
        said = project.tick(spec)
        assert said.startswith("rolled back: PredictionErrorRateHigh fired"), said
        assert project.served() == project.first
        undo = history(project.log.store, "bc")[-1]
        assert undo.rolls_back == copy and undo.moved_by == "sensor bake_bc"
        assert [a["name"] for a in undo.evidence["alerts"]] == ["PredictionErrorRateHigh"]
        assert project.bake_tag(copy)["outcome"] == "rolled back"


def test_an_unreachable_alertmanager_leaves_the_live_metric_to_judge(project):
    project.alerts = AlertmanagerResource(url=f"http://127.0.0.1:{free_port()}")
    copy = project.promote(project.good)
    assert "0 answers" in project.tick(_spec(min_labels=30))
    assert project.served() == copy
