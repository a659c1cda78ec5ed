"""The code location: every model's definitions and the shared resources, assembled once."""

from __future__ import annotations

import os

import dagster as dg

from mlserve_assets.factory import build_model_defs
from mlserve_assets.resources.bento_packager import BentoPackager
from mlserve_assets.resources.mlflow_registry import MlflowRegistry
from mlserve_assets.resources.prediction_log import PredictionLogResource
from mlserve_assets.settings import Settings
from mlserve_assets.spec_loader import load_specs


def _wired(variable: str, value: str) -> str:
    """``dg.EnvVar(variable)`` when that variable holds ``value``, else ``value`` itself.

    A URL from the environment may carry a password; as an EnvVar the UI's resource configuration
    shows the variable's name, not its value. The embedded defaults (local paths) are shown as is.
    """
    return dg.EnvVar(variable) if os.environ.get(variable) == value else value


def build_definitions(settings: Settings) -> dg.Definitions:
    """All models declared in the settings' spec files, plus one job that trains them all."""
    settings.home.mkdir(parents=True, exist_ok=True)
    models = load_specs(settings.spec_paths)
    tracking_uri = _wired("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    mlflow_ui = os.environ.get("MLSERVE_MLFLOW_UI_URL")
    return dg.Definitions.merge(
        *(build_model_defs(model) for model in models),
        dg.Definitions(
            jobs=[
                dg.define_asset_job(
                    "train_all",
                    selection=dg.AssetSelection.all(),
                    description="Train, register, gate and package every declared model.",
                )
            ],
            # Every run in one process, those the UI launches too ("Materialize" on a group):
            # a process per step re-imports MLflow, scikit-learn and Dagster for each of nine
            # steps, which made one model's group take 45 s for 5 s of work.
            executor=dg.in_process_executor,
            resources={
                "mlflow": MlflowRegistry(
                    tracking_uri=tracking_uri,
                    artifact_location=settings.artifact_location,
                    ui_url=dg.EnvVar("MLSERVE_MLFLOW_UI_URL") if mlflow_ui else None,
                ),
                "prediction_log": PredictionLogResource(
                    url=_wired("MLSERVE_PREDICTIONS_URL", settings.predictions_url)
                ),
                "bentos": BentoPackager(
                    bentoml_home=str(settings.bentoml_home), tracking_uri=tracking_uri
                ),
            },
        ),
    )


defs = build_definitions(Settings.from_env())
