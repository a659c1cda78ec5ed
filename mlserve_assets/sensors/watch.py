"""Watching traffic: one sensor per model that runs the drift check as predictions accumulate.

Labels can take days; drift shows in the requests themselves. After every
``drift.every_predictions`` new predictions the sensor requests the ``watch_<model>`` job (the
base rows read again, the ``predictions`` asset and its checks), so the drift check fires before
the labels would.
"""

import dagster as dg

from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.sensors.ticks import minimum_interval
from mlserve_assets.spec.models import ModelSpec


def build_watch_sensor(model: ModelSpec, job_name: str) -> dg.SensorDefinition:
    """The sensor that requests ``job_name`` each ``drift.every_predictions`` predictions."""
    name, every = model.name, model.drift.every_predictions

    @dg.sensor(
        name=f"watch_{name}",
        job_name=job_name,
        minimum_interval_seconds=minimum_interval(model.retrain.check_every_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Check {name}'s served traffic for drift after every {every} predictions.",
    )
    def watch(
        context: dg.SensorEvaluationContext, prediction_log: PredictionLogResource
    ) -> dg.SensorResult | dg.SkipReason:
        logged = prediction_log.store.count_predictions(name)
        checked = int(context.cursor or 0)
        if logged < checked + every:
            return dg.SkipReason(f"{logged - checked} predictions since the last check of {every}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{name}-watch-{logged}")], cursor=str(logged)
        )

    return watch
