"""Registries for tests: one with a champion made without Dagster, a copy of a trained one.

``promote_new_version`` logs, registers and promotes through the same resource and the same alias
move the pipeline uses, into a SQLite MLflow store in a folder of the caller's: a real registry,
read by the service exactly as after ``mlserve train``, at a fraction of a training's cost.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from sklearn.base import BaseEstimator

from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import Settings
from mlserve_assets.spec.models import ModelSpec
from serving.model.artifact import trusted_types
from serving.registry import CHAMPION, Tag, champion, connect, move_alias
from serving.store.predictions import PredictionStore


def register_new_version(
    registry: MlflowRegistry,
    name: str,
    estimator: BaseEstimator,
    rows: pd.DataFrame,
    held_out: pd.DataFrame | None = None,
) -> str:
    """Log ``estimator`` (fitted on ``rows``) as mlserve logs a model and register it.

    With ``held_out`` rows, its ONNX twin is made and checked on them, as training does.
    """
    schema = tuple((column, "double", True) for column in rows.columns)
    with registry.training_run(name, {}) as parent:
        logged = registry.log_candidate(
            model_name=name,
            parent_run_id=parent,
            candidate="test",
            estimator=estimator,
            params={},
            metrics={},
            example=rows.head(3),
            schema=schema,
            tags={},
            trusted=trusted_types(),
        )
    tags = {Tag.METRIC: "accuracy", Tag.SCORE: "1"}
    if held_out is not None:
        twin = registry.log_twin(logged.model_uri, estimator, list(schema), held_out)
        tags[Tag.ONNX] = twin.tag()
    return registry.register(name, logged.model_uri, tags)


def promote_new_version(
    registry: MlflowRegistry,
    log: PredictionLogResource,
    name: str,
    estimator: BaseEstimator,
    rows: pd.DataFrame,
) -> str:
    """A new registered version of ``estimator``, made the champion as mlserve makes one."""
    version = register_new_version(registry, name, estimator, rows)
    move_alias(registry.client, log.store, name, version, by="test", reason="a test's champion")
    return version


def tracking_store(folder: Path) -> str:
    """The SQLite MLflow store in ``folder``: its URI, the store made first if there is none.

    A new store is a copy of one migrated before: MLflow migrates a new SQLite store in about 60
    steps, 1.9 s of a core (measured), and the suite makes one for most tests; the copy is the
    same schema at the same MLflow version. The first caller makes the template beside the
    system's temporary files (keyed by MLflow's version; renamed into place whole, so concurrent
    workers never read half of one). A store already there is the caller's, and left as it is.
    """
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "mlflow.db"
    if not store.exists():
        template = Path(tempfile.gettempdir()) / f"mlserve-empty-mlflow-{mlflow.__version__}.db"
        if not template.exists():
            making = template.with_suffix(f".{os.getpid()}.db")
            uri = f"sqlite:///{making}"
            MlflowClient(uri, uri).search_registered_models()
            os.replace(making, template)
        _sqlite_copy(template, store)
    return f"sqlite:///{store}"


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API: rows still in a write-ahead log included."""
    reading, writing = sqlite3.connect(source), sqlite3.connect(target)
    with writing:
        reading.backup(writing)
    reading.close()
    writing.close()


def registry_at(folder: Path) -> tuple[MlflowRegistry, PredictionLogResource]:
    """A registry and a prediction log in ``folder``, both SQLite."""
    registry = MlflowRegistry(
        tracking_uri=tracking_store(folder),
        artifact_location=(folder / "artifacts").as_uri(),
    )
    return registry, PredictionLogResource(url=f"sqlite:///{folder / 'predictions.db'}")


def registry_copy(settings: Settings, folder: Path) -> str:
    """A consistent copy of a SQLite registry, so moving its aliases disturbs no other test.

    Through SQLite's backup API, not a file copy: rows still in the write-ahead log beside the
    file would be missing from a copy of the file alone.
    """
    copy = folder / "mlflow.db"
    _sqlite_copy(Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///")), copy)
    return f"sqlite:///{copy}"


def champion_estimator(settings: Settings, name: str) -> BaseEstimator:
    """The estimator ``champion`` points at in a project's registry, loaded as training loads it."""
    registry = MlflowRegistry(tracking_uri=settings.mlflow_tracking_uri)
    champion = registry.client.get_model_version_by_alias(name, CHAMPION)
    return registry.load(name, str(champion.version), trusted_types())


def move(uri: str, predictions_url: str, name: str, version: str) -> None:
    """Move ``champion`` of ``name`` as mlserve does, recorded in the log at ``predictions_url``."""
    store = PredictionStore(predictions_url)
    move_alias(connect(uri), store, name, version, by="test", reason="a test's move")
    store.dispose()


def champion_copy(uri: str, name: str) -> tuple[ModelVersion, ModelVersion]:
    """The champion of ``name`` and a new version registered from the same model (not promoted)."""
    registry = MlflowRegistry(tracking_uri=uri)
    current = champion(registry.client, name)
    with registry.fluent_api():  # the store finds a models:/m-... source through it
        copy = registry.client.create_model_version(
            name, current.source, run_id=current.run_id, tags=current.tags
        )
    return current, copy


def bc_spec(**fields: object) -> ModelSpec:
    """The spec of ``bc`` (breast_cancer, one logistic candidate), ``fields`` on top."""
    return ModelSpec.model_validate(
        {
            "name": "bc",
            "source": {"kind": "sklearn", "dataset": "breast_cancer"},
            "target": "target",
            "task": "classification",
            "candidates": [{"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}],
            "metric": "accuracy",
            "gate": {"threshold": 0.5},
            **fields,
        }
    )
