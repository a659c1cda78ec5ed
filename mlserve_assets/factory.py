"""The asset factory: one model spec in, that model's asset graph, checks, job and sensor out.

The only place a model's definitions are assembled. It reads like the graph: each stage's builder
(``stages/``) makes its assets over pure functions in ``ml/`` and resources for external systems,
so what the UI shows maps one-to-one onto testable code.

    dataset -> validated_dataset ─┐
    predictions -> feedback ──────┴> split -> candidates -> registered_version -> champion -> bento
"""

from __future__ import annotations

import dagster as dg

from mlserve_assets.assets.data import data_assets
from mlserve_assets.assets.drift import CHECK, drift_checks
from mlserve_assets.assets.feedback import feedback_assets
from mlserve_assets.assets.keys import ModelAssets
from mlserve_assets.assets.release import release_assets
from mlserve_assets.assets.training import training_assets
from mlserve_assets.sensors.bake import build_bake_sensor
from mlserve_assets.sensors.retrain import build_retrain_sensor
from mlserve_assets.sensors.shadow import build_shadow_sensor
from mlserve_assets.sensors.watch import build_watch_sensor
from mlserve_assets.spec.models import ModelSpec

MODEL_RUN_TAG = "mlserve/model"
"""Every training run of a model carries its name here: the instance's queued run coordinator
limits runs per value of this tag to one (``dagster.yaml``, ``infra/dagster/dagster.yaml``, the
Helm values), so two trainings of one model never overlap whoever starts them."""


def training(specs: list[ModelSpec]) -> dg.AssetSelection:
    """What a training of ``specs`` runs: their asset groups, without the drift checks.

    Training reads the log but needs no verdict on its traffic (the ``watch_<model>`` job gives
    one), and a run selecting ``predictions`` without ``validated_dataset`` could not load the
    check's reference.
    """
    groups = dg.AssetSelection.groups(*(spec.name for spec in specs))
    drift = [dg.AssetCheckKey(ModelAssets(spec).key("predictions"), CHECK) for spec in specs]
    return groups - dg.AssetSelection.checks(*drift)


def build_model_defs(spec: ModelSpec) -> dg.Definitions:
    """The asset graph, checks, jobs (train, watch) and sensors (retrain, bake, shadow, watch)."""
    model = ModelAssets(spec)
    job = dg.define_asset_job(
        f"train_{spec.name}",
        selection=training([spec]),
        description=f"Load, check, train with feedback, register, gate and package {spec.name}.",
        tags={MODEL_RUN_TAG: spec.name},
    )
    # The drift check's reference rows are read again in the same run, not loaded from an
    # earlier one: a model trained by `mlserve train` (in-process, nothing kept between runs)
    # left none for the daemon's storage, and its first watch failed loading them.
    watch = dg.define_asset_job(
        f"watch_{spec.name}",
        selection=dg.AssetSelection.assets(
            model.key("dataset"), model.key("validated_dataset"), model.key("predictions")
        ),
        description=(
            f"Read {spec.name}'s base rows, observe its prediction log and check the traffic "
            "for drift against them."
        ),
    )
    return dg.Definitions(
        assets=[
            *data_assets(model),
            *feedback_assets(model),
            *training_assets(model),
            *release_assets(model),
        ],
        asset_checks=drift_checks(model),
        jobs=[job, watch],
        sensors=[
            build_retrain_sensor(spec, job.name),
            build_bake_sensor(spec),
            build_shadow_sensor(spec),
            build_watch_sensor(spec, watch.name),
        ],
    )
