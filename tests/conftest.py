"""Shared fixtures: a real MLflow SQLite store per test and a helper that trains through Dagster."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from mlflow import MlflowClient

from harness.project import train
from harness.servers import MLFLOW_PROCESS_URIS, Postgres, postgres_cluster
from mlserve_assets.settings import PROJECT_ROOT, Settings

EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*.yaml"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    return Settings(
        home=home,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        spec_paths=EXAMPLES,
        predictions_url=f"sqlite:///{tmp_path / 'predictions.db'}",
        bentoml_home=tmp_path / "bentoml",
    )


@pytest.fixture
def client(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def materialization_metadata(result: dg.ExecuteInProcessResult, *path: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat is not None and tuple(mat.asset_key.path) == path:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {'/'.join(path)}")


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Settings:
    """A store where breast_cancer and diabetes have champions (and bentos), trained once."""
    root = tmp_path_factory.mktemp("trained")
    settings = Settings(
        home=root / "home",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        spec_paths=EXAMPLES,
        predictions_url=f"sqlite:///{root / 'predictions.db'}",
        bentoml_home=root / "bentoml",
    )
    for job in ("train_breast_cancer", "train_diabetes"):
        assert train(settings, EXAMPLES, job).success
    return settings


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _no_mlflow_uri_in_the_environment() -> Iterator[None]:
    """Each test starts and ends without MLflow's process-wide URIs in os.environ.

    In-process training calls mlflow.set_tracking_uri, which also sets MLFLOW_TRACKING_URI here:
    a later test's ``Settings.from_env()`` would read another test's store.
    """
    for variable in MLFLOW_PROCESS_URIS:
        os.environ.pop(variable, None)
    yield
    for variable in MLFLOW_PROCESS_URIS:
        os.environ.pop(variable, None)


# Each model's assets, in the order an in-process run materialises them.
STAGES = [
    "dataset",
    "predictions",
    "validated_dataset",
    "feedback",
    "split",
    "candidates",
    "registered_version",
    "champion",
    "bento",
]


def fuzz(
    url: str, key: str, workdir: Path, exclude: list[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Schemathesis against a live service: valid and invalid requests from its own document.

    Every answer is checked: no 5xx, a documented status, a documented content type and body,
    invalid requests refused, undocumented methods refused. positive_data_acceptance is left
    out: a record can fit the schema and still be one the model cannot score (its output
    overflows), which the document lists as a 422.
    """
    checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json"]
    command += ["--checks", ",".join(checks), "--max-examples", "40", "--seed", "1"]
    command += ["--phases", "examples,coverage,fuzzing", "--workers", "1"]
    command += ["--header", f"Authorization: Bearer {key}"]
    for path in exclude:
        command += ["--exclude-path", path]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)


def registry_copy(settings: Settings, folder: Path) -> str:
    """A consistent copy of a SQLite registry, so moving its aliases disturbs no other test.

    Through SQLite's backup API, not a file copy: rows still in the write-ahead log beside the
    file would be missing from a copy of the file alone.
    """
    copy = folder / "mlflow.db"
    source = sqlite3.connect(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{copy}"


@contextmanager
def global_tracking(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URI set to ``uri``, then put back.

    Some client calls resolve through the global URI whatever the client was given (creating a
    version from a ``models:/m-...`` source looks the logged model up there), and earlier tests
    leave it pointing at their own stores.
    """
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
