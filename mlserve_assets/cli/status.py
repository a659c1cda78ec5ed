"""What an operator asks of a model: what serves, since when, how it does, what training did last.

Read from the three places that hold the answers (the MLflow registry, the prediction store with
the champion's history, the Dagster instance), so ``mlserve status`` needs no running service.
"""

from __future__ import annotations

import json
import time
from typing import Any

import dagster as dg
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlserve_assets.ml.replay import replay
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.spec.models import ModelSpec
from serving.config import trust_registry
from serving.registry import (
    CHALLENGER,
    Tag,
    champion_state,
    drift_report,
    feedback_watermark,
    gate_outcome,
    latest_version,
    served_champion,
)
from serving.store import shadow
from serving.store.moves import Move, history

# Versions that logged a prediction this recently count as answering now.
ANSWERING_WINDOW_SECONDS = 600.0


def model_status(
    client: MlflowClient,
    log: PredictionLogResource,
    instance: dg.DagsterInstance,
    spec: ModelSpec,
) -> dict[str, Any]:
    """Everything ``mlserve status MODEL`` shows, as JSON-ready data."""
    name = spec.name
    current = served_champion(client, log.store, name, trust_registry=trust_registry())
    moves = history(log.store, name)
    latest = latest_version(client, name)
    return {
        "model": name,
        "champion": None if current is None else _champion(current, moves, log, spec),
        "last_training": None if latest is None else _training(latest, instance),
        "sensor": _sensor(instance, f"retrain_{name}"),
        "answering": log.versions_served(name, since=time.time() - ANSWERING_WINDOW_SECONDS),
        "shadow": _shadow(client, log, spec),
        "drift": _drift(client, name),
    }


def _drift(client: MlflowClient, name: str) -> dict[str, Any] | None:
    """The latest drift check on served traffic, as the ``watch_<model>`` job recorded it."""
    report = drift_report(client, name)
    return None if report is None else report._asdict()


def _shadow(client: MlflowClient, log: PredictionLogResource, spec: ModelSpec) -> dict | None:
    """The challenger in shadow, and how it compares with what answered, on the same requests."""
    state = champion_state(
        client, log.store, spec.name, trust_registry=trust_registry(), alias=CHALLENGER
    )
    if state.vetted is None:
        return None
    version = state.vetted
    since = shadow.pairing_start(log.store, spec.name)
    labelled = shadow.outcomes(log.store, spec.name, version, since=since)
    found: dict[str, Any] = {
        "version": version,
        "since": since,
        "shadowed": shadow.shadowed(log.store, spec.name, version),
        "labelled": len(labelled),
        "metric": spec.scorer.name,
    }
    if len(labelled):
        report = replay(spec.name, spec.scorer, labelled, {version: labelled["shadow"].to_numpy()})
        [ours] = report.versions
        found |= {"score": ours.score, "served": report.served, "gain_interval": ours.interval}
    return found


def _champion(
    version: ModelVersion, moves: list[Move], log: PredictionLogResource, spec: ModelSpec
) -> dict[str, Any]:
    number = str(version.version)
    arrival = next((m for m in reversed(moves) if m.to_version == number), None)
    metric = spec.scorer
    # Read once: the metric and how many labels it stands on, as the sensor sees them.
    live = log.live(spec.name, number, metric, spec.retrain.live_window)
    labels_since = log.labelled_since(spec.name, feedback_watermark(version)).count
    return {
        "version": number,
        "since": arrival.moved_at if arrival else version.creation_timestamp / 1000,
        "moved_by": arrival.moved_by if arrival else "not recorded (before the audit trail)",
        "reason": arrival.reason if arrival else None,
        "metric": metric.name,
        "training_score": _float(version.tags.get(Tag.SCORE)),
        "live_score": live.value,
        "live_labels": live.labels,
        "labels_since_training": labels_since,
        # Baking's latest look at it as champion (``mlserve_assets.ml.bake``), if any yet.
        "baking": json.loads(version.tags[Tag.BAKE]) if Tag.BAKE in version.tags else None,
        # Whether its ONNX twin may answer (``mlserve_assets.ml.twin``), and why.
        "twin": json.loads(version.tags[Tag.ONNX]) if Tag.ONNX in version.tags else None,
    }


def _training(version: ModelVersion, instance: dg.DagsterInstance) -> dict[str, Any]:
    run_id = version.tags.get(Tag.DAGSTER_RUN)
    run = instance.get_run_by_id(run_id) if run_id else None
    sensor = None if run is None else run.tags.get("dagster/sensor_name")
    return {
        "version": str(version.version),
        "registered_at": version.creation_timestamp / 1000,
        "run_id": run_id,
        "trigger": f"sensor {sensor}" if sensor else ("by hand" if run else "unknown"),
        "gate": gate_outcome(version),
        "gate_reason": version.tags.get(Tag.GATE_REASON),
        "feedback_rows": int(version.tags.get(Tag.FEEDBACK_ROWS, 0)),
    }


def _sensor(instance: dg.DagsterInstance, sensor_name: str) -> str:
    """RUNNING or STOPPED as the instance has it; a sensor never toggled runs by default."""
    for state in instance.all_instigator_state():
        if state.name == sensor_name:
            return "stopped" if state.status.value == "STOPPED" else "running"
    return "running (default; needs the daemon: mlserve dev)"


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)
