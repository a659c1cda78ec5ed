"""Assembling Definitions: every model's asset graph and what they share.

The code location (``definitions``) and the Dagster component (``component``) both build here, so
a model declared either way becomes the same graph.
"""

from __future__ import annotations

import functools
import os
from dataclasses import fields

import dagster as dg

from mlserve_assets.factory import build_model_defs, training
from mlserve_assets.resources.alerts import AlertmanagerResource
from mlserve_assets.resources.bentos import BentoPackager
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import Settings
from mlserve_assets.spec.loader import load_specs
from mlserve_assets.spec.models import ModelSpec
from serving.config import trust_registry
from serving.locations import Locations


def _wired(variable: str, value: str) -> str:
    """``dg.EnvVar(variable)`` when that variable holds ``value``, else ``value`` itself.

    A URL from the environment may carry a password; as an EnvVar the UI's resource configuration
    shows the variable's name, not its value. The embedded defaults (local paths) are shown as is.
    """
    return dg.EnvVar(variable) if os.environ.get(variable) == value else value


def build_definitions(settings: Settings) -> dg.Definitions:
    """All models declared in the settings' spec files (``MLSERVE_SPECS``), and ``train_all``.

    ``mlserve train`` runs ``train_all``. Components leave it out: each instance would bring its
    own, and a code location may hold a job name once.
    """
    specs = load_specs(settings.spec_paths)
    train_all = dg.define_asset_job(
        "train_all",
        selection=training(specs),
        description="Train, register, gate and package every declared model.",
    )
    return dg.Definitions.merge(
        models_definitions(settings, specs),
        dg.Definitions(jobs=[train_all]),
    )


def models_definitions(locations: Locations, models: list[ModelSpec]) -> dg.Definitions:
    """The asset graph of each model, with the resources and the executor they share."""
    shared = _shared(Locations(**{f.name: getattr(locations, f.name) for f in fields(Locations)}))
    return dg.Definitions.merge(*(build_model_defs(model) for model in models), shared)


@functools.cache
def _shared(locations: Locations) -> dg.Definitions:
    """What every model uses, made once per set of locations.

    Several component instances each merge it, and Dagster accepts a resource or an executor
    twice only when it is the very same object.
    """
    locations.home.mkdir(parents=True, exist_ok=True)
    tracking_uri = _wired("MLFLOW_TRACKING_URI", locations.mlflow_tracking_uri)
    mlflow_ui = os.environ.get("MLSERVE_MLFLOW_UI_URL")
    return dg.Definitions(
        # Every run in one process, those the UI launches too ("Materialize" on a group):
        # a process per step re-imports MLflow, scikit-learn and Dagster for each of nine
        # steps, which made one model's group take 45 s for 5 s of work.
        executor=dg.in_process_executor,
        resources={
            "registry": MlflowRegistry(
                tracking_uri=tracking_uri,
                artifact_location=locations.artifact_location,
                trust_registry=trust_registry(),
                ui_url=dg.EnvVar("MLSERVE_MLFLOW_UI_URL") if mlflow_ui else None,
            ),
            "prediction_log": PredictionLogResource(
                url=_wired("MLSERVE_PREDICTIONS_URL", locations.predictions_url),
                home=str(locations.home),
                trusted_sources=os.environ.get("MLSERVE_TRUSTED_SOURCES", "")
                .replace(",", " ")
                .split(),
            ),
            "alerts": AlertmanagerResource(url=os.environ.get("MLSERVE_ALERTMANAGER_URL") or None),
            "bentos": BentoPackager(
                bentoml_home=str(locations.bentoml_home), tracking_uri=tracking_uri
            ),
        },
    )
