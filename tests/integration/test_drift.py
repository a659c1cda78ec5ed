"""The drift check through Dagster on a real prediction log: training-like traffic passes, a shift
names its features; the watch sensor requests the check as traffic accumulates."""

from __future__ import annotations

import time

import dagster as dg
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.registries import bc_spec, tracking_store
from mlserve_assets.assets.drift import CHECK
from mlserve_assets.factory import build_model_defs
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.watch import build_watch_sensor
from serving.registry import drift_report
from serving.store.ids import new_prediction_id
from serving.store.tables import PredictionRow

CANCER = load_breast_cancer(as_frame=True)
SPEC = bc_spec(drift={"window": 300, "min_rows": 100, "every_predictions": 200})
MODEL = make_pipeline(StandardScaler(), LogisticRegression()).fit(CANCER.data, CANCER.target)


def _log(log: PredictionLogResource, records: pd.DataFrame) -> None:
    """``records`` answered by ``MODEL`` and logged as the service logs them."""
    proba = MODEL.predict_proba(records)
    log.store.insert_predictions(
        PredictionRow(
            new_prediction_id(),
            time.time(),
            "bc",
            "1",
            record,
            int(p.argmax()),
            {"0": float(p[0]), "1": float(p[1])},
        )
        for record, p in zip(records.to_dict("records"), proba, strict=True)
    )


def _check(log: PredictionLogResource, registry: MlflowRegistry) -> dg.AssetCheckEvaluation:
    """What the ``watch_bc`` job selects, run as its sensor starts it: on an instance no training
    ran on (a model trained by `mlserve train` keeps nothing in the daemon's storage)."""
    defs = build_model_defs(SPEC)
    [watch] = [job for job in defs.jobs if job.name == "watch_bc"]
    keys = watch.selection.resolve(list(defs.assets))
    assets = [a for a in defs.assets if a.key in keys]
    checks = [c for c in defs.asset_checks if all(k.asset_key in keys for k in c.check_keys)]
    result = dg.materialize(
        [*assets, *checks],
        resources={"prediction_log": log, "registry": registry},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK]
    return evaluation


def test_training_like_traffic_passes_and_a_shift_names_its_features(tmp_path):
    log = PredictionLogResource(url=f"sqlite:///{tmp_path / 'predictions.db'}")
    registry = MlflowRegistry(tracking_uri=tracking_store(tmp_path))
    registry.client.create_registered_model("bc")
    _log(log, CANCER.data.sample(300, random_state=0))
    quiet = _check(log, registry)
    assert quiet.passed, quiet.description
    assert quiet.metadata["served_records"].value == 300
    # The label-free estimate: the model's expected accuracy from its own probabilities.
    expected = MODEL.predict_proba(CANCER.data.sample(300, random_state=0)).max(axis=1).mean()
    assert abs(quiet.metadata["estimated_accuracy"].value - expected) < 0.02

    shifted = CANCER.data.sample(300, random_state=1).copy()
    shifted["mean texture"] *= 1.6  # a new scanner: one measurement reads high
    _log(log, shifted)
    moved = _check(log, registry)
    assert not moved.passed and moved.severity == dg.AssetCheckSeverity.WARN
    assert moved.metadata["drifted"].value == "mean texture"
    # Kept on the registered model, where the service reads it for Prometheus and status.
    report = drift_report(registry.client, "bc")
    assert report.drifted == ["mean texture"] and report.served_records == 300
    assert report.estimate == moved.metadata["estimated_accuracy"].value


def test_the_watch_sensor_requests_the_check_every_n_predictions(tmp_path):
    log = PredictionLogResource(url=f"sqlite:///{tmp_path / 'predictions.db'}")
    sensor = build_watch_sensor(SPEC, "watch_bc")

    def tick(cursor: str | None) -> dg.SensorExecutionData:
        with dg.build_sensor_context(resources={"prediction_log": log}, cursor=cursor) as context:
            return sensor.evaluate_tick(context)

    _log(log, CANCER.data.head(150))
    assert "150 predictions since the last check" in tick(None).skip_message
    _log(log, CANCER.data.head(60))
    requested = tick(None)
    [request] = requested.run_requests
    assert request.run_key == "bc-watch-210" and requested.cursor == "210"
    assert tick("210").skip_message.startswith("0 predictions since")
