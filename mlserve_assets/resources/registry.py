"""MLflow tracking and registry as one Dagster resource with intention-revealing methods.

Why not dagster-mlflow's ``mlflow_tracking``: it names one experiment for the whole code location
and opens one MLflow run per Dagster run (measured: in-process, a three-asset run logs to one run,
marked FAILED when a step fails), so ``train_all`` would put every model's candidates in one run of
one experiment. mlserve keeps an experiment per model and a parent run per training, with nested
candidate runs, registration and aliases, which this small resource owns. The alias and tag names
are the serving side's contract (``serving.registry``).
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from pydantic import PrivateAttr
from sklearn.base import BaseEstimator

from mlserve_assets.ml.twin import TwinVerdict, make_twin
from mlserve_assets.resources.predictions import PredictionLogResource
from serving.model.artifact import load_estimator, needed_types
from serving.model.fields import TEXT_TYPES
from serving.registry import (
    Tag,
    connect,
    download_version,
    latest_version,
    served_champion,
)

# What MLflow's fluent API reads, and ``fluent_api`` puts back.
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class LoggedCandidate:
    """Where a fitted candidate lives in MLflow."""

    run_id: str
    model_uri: str


class MlflowRegistry(dg.ConfigurableResource):
    """An MLflow tracking server or store, and the model registry beside it."""

    tracking_uri: str
    artifact_location: str | None = None
    experiment_prefix: str = "mlserve"
    trust_registry: bool = False
    """Take the champion alias as it stands, recorded move or not (MLSERVE_TRUST_REGISTRY)."""
    ui_url: str | None = None
    """The MLflow UI's address (``MLSERVE_MLFLOW_UI_URL``): runs and versions become links."""

    _client: MlflowClient | None = PrivateAttr(default=None)

    @property
    def client(self) -> MlflowClient:
        """The client bound to this store, made on first use."""
        if self._client is None:
            self._client = connect(self.tracking_uri)
        return self._client

    @contextmanager
    def fluent_api(self) -> Iterator[None]:
        """MLflow's fluent API pointed at this store for the body, then put back as it was.

        ``log_model`` and ``register_model`` speak only the fluent API, which reads the
        process's tracking and registry URIs (and sets ``MLFLOW_TRACKING_URI``). Set for the body
        alone, they leave nothing behind for a later run, another store or a test to undo.
        """
        before = {name: os.environ.get(name) for name in _URI_VARIABLES}
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])  # None unsets it
            mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def experiment_id(self, model_name: str) -> str:
        """The model's experiment, created on first use under ``artifact_location``."""
        name = f"{self.experiment_prefix}/{model_name}"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (
            f"{self.artifact_location.rstrip('/')}/{model_name}" if self.artifact_location else None
        )
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created concurrently by another run: use theirs
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    @contextmanager
    def training_run(self, model_name: str, tags: dict[str, str]) -> Iterator[str]:
        """A parent run for one training; candidate runs nest under it. Yields the run id."""
        with (
            self.fluent_api(),
            mlflow.start_run(
                experiment_id=self.experiment_id(model_name), run_name="training", tags=tags
            ) as run,
        ):
            yield run.info.run_id

    @contextmanager
    def _nested_run(
        self,
        model_name: str,
        parent_run_id: str,
        run_name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> Iterator[mlflow.ActiveRun]:
        """A run under the training's parent run, with its params and metrics logged."""
        with mlflow.start_run(
            experiment_id=self.experiment_id(model_name),
            run_name=run_name,
            parent_run_id=parent_run_id,
            nested=True,
            tags=tags,
        ) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics(metrics)
            yield run

    def log_trial(
        self,
        *,
        model_name: str,
        parent_run_id: str,
        candidate: str,
        mix: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
    ) -> str:
        """One nested run for a candidate fitted on a mix: params and metrics, no model.

        Only the final model is logged as an artifact: logging every trial's model cost about
        half a second each, and nothing loads them.
        """
        tags = {**tags, Tag.CANDIDATE: candidate, Tag.MIX: mix}
        name = f"{candidate} x {mix}"
        with self._nested_run(model_name, parent_run_id, name, params, metrics, tags) as run:
            return run.info.run_id

    def log_candidate(
        self,
        *,
        model_name: str,
        parent_run_id: str,
        candidate: str,
        estimator: BaseEstimator,
        params: dict[str, Any],
        metrics: dict[str, float],
        example: pd.DataFrame,
        schema: tuple[tuple[str, str, bool], ...],
        tags: dict[str, str],
        trusted: frozenset[str],
    ) -> LoggedCandidate:
        """One nested run with params, metrics and the model (signature and input example).

        The input signature is ``schema`` (name, type, required), taken from the rows as the
        source gave them, not inferred from the example: the example holds the prepared text and
        a few rows, which would hide booleans and the columns that may be missing.
        """
        tags = {**tags, Tag.CANDIDATE: candidate, Tag.FINAL: "true"}
        name = f"final: {candidate}"
        # MLflow checks the example against the signature and reads no gap as an integer: an
        # integer column with gaps shows 0 there instead (the example only illustrates).
        gapped = [n for n, kind, _ in schema if kind == "long" and example[n].isna().any()]
        example = example.fillna(dict.fromkeys(gapped, 0))
        with self._nested_run(model_name, parent_run_id, name, params, metrics, tags) as run:
            info = mlflow.sklearn.log_model(
                sk_model=estimator,
                name="model",
                signature=ModelSignature(
                    inputs=Schema(
                        [ColSpec(kind, name, required) for name, kind, required in schema]
                    ),
                    outputs=infer_signature(example, estimator.predict(example)).outputs,
                ),
                input_example=example,
                # Given explicitly: inferring them costs about 4 s per model.
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=needed_types(estimator, trusted),
            )
            return LoggedCandidate(run.info.run_id, info.model_uri)

    def log_twin(
        self, model_uri: str, estimator: BaseEstimator, inputs: list, held_out: pd.DataFrame
    ) -> TwinVerdict:
        """Make the logged model's ONNX twin and, if verified, store it in the same model."""
        columns = [name for name, *_ in inputs]  # the service's order: the signature's
        text = any(kind in TEXT_TYPES for _, kind, _ in inputs)
        rows = None if text else held_out[columns].to_numpy(float)
        with tempfile.TemporaryDirectory() as work:
            verdict = make_twin(estimator, inputs, rows, Path(work))
            if verdict.verified:
                model_id = model_uri.removeprefix("models:/")
                self.client.log_model_artifact(model_id, f"{work}/model.onnx", "onnx")
        return verdict

    def register(
        self, model_name: str, model_uri: str, tags: dict[str, str], description: str = ""
    ) -> str:
        """A new registered version of ``model_name`` from a logged model; returns the version.

        Through the client rather than ``mlflow.register_model``, which prints "Successfully
        registered model" and "Created version" to the terminal, between ``mlserve train``'s own
        lines. The spec's description goes on the registered model, where the MLflow UI shows it.
        """
        try:
            self.client.create_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        with self.fluent_api():  # the store finds a models:/m-... source through the fluent URI
            created = self.client.create_model_version(
                model_name,
                source=model_uri,
                tags=tags,
                model_id=model_uri.removeprefix("models:/"),
            )
        if description:
            self.client.update_registered_model(model_name, description=description)
        return str(created.version)

    def version_tagged(self, model_name: str, tag: str, value: str) -> str | None:
        """The newest version of ``model_name`` whose ``tag`` is ``value``, if any."""
        found = self.client.search_model_versions(
            f"name = '{model_name}' and tags.`{tag}` = '{value}'"
        )
        return max((str(v.version) for v in found), key=int, default=None)

    def run_link(self, run_id: str) -> dg.MetadataValue:
        """A run, as a link when the MLflow UI's address is known, else its id."""
        if not self.ui_url:
            return dg.MetadataValue.text(run_id)
        run = self.client.get_run(run_id)
        base = self.ui_url.rstrip("/")
        return dg.MetadataValue.url(f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}")

    def version_link(self, model_name: str, version: str) -> dg.MetadataValue:
        """A registered version, as a link when the MLflow UI's address is known."""
        if not self.ui_url:
            return dg.MetadataValue.text(f"{model_name} v{version}")
        return dg.MetadataValue.url(
            f"{self.ui_url.rstrip('/')}/#/models/{model_name}/versions/{version}"
        )

    def champion(self, model_name: str, log: PredictionLogResource) -> ModelVersion | None:
        """The champion as the service serves it, or None before the first promotion.

        The version of the newest move mlserve recorded (``serving.registry.served_champion``): a
        move of the alias made around mlserve neither serves nor sets what the gate must beat.
        """
        trust = self.trust_registry
        return served_champion(self.client, log.store, model_name, trust_registry=trust)

    def latest_version(self, model_name: str) -> ModelVersion | None:
        """The most recently registered version, whatever the gate made of it."""
        return latest_version(self.client, model_name)

    def tag_version(self, model_name: str, version: str, tags: dict[str, str]) -> None:
        """Record facts (such as the gate's verdict) on a registered version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, version, key, value)

    def load(self, model_name: str, version: str, trusted: frozenset[str]) -> BaseEstimator:
        """The scikit-learn estimator of one registered version, read as the service reads it.

        Through ``serving.model.artifact`` with the spec's ``trusted`` types, never MLflow's
        loader: the gate loads the champion, which a registry writer could have replaced.
        """
        with tempfile.TemporaryDirectory() as folder:
            local = download_version(self.client, model_name, version, Path(folder))
            return load_estimator(local, trusted)
