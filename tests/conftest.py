"""Fixtures every tier shares, and the tier of each test, from its folder.

``tests/unit`` runs no process and no server and goes first (``make test-unit``, under a minute);
``tests/integration`` holds every guarantee that needs real parts; ``tests/stack`` is the compose
stack in containers, and the ``containers`` mark puts a test beside it (``make test-containers``).
Helpers live in ``harness/``, not here.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.project import EXAMPLES, train
from harness.registries import tracking_store
from harness.servers import Postgres, postgres_cluster
from mlserve_assets.settings import Settings

TIERS = {"unit": "unit", "integration": "integration", "stack": "containers"}
# The integration modules that hold a worker longest (seconds of a worker, measured on three
# workers, 2026-12-04), run first: with a module to a worker, one of them started last is the
# whole tier's tail while the other workers idle. The Makefile turns off xdist's own reordering
# (by number of tests), which otherwise put this one-test benchmark last: 2:30 alone at the end.
LONGEST_FIRST = (
    "test_serving_faults.py",  # 204
    "test_bench.py",  # 145
    "test_loop.py",  # 118
    "test_ui.py",  # 110
    "test_cli.py",  # 99
    "test_run_queue.py",  # 91
    "test_component.py",  # 81
    "test_loop_guardrails.py",  # ~76 (its recovery test moved to test_real_drift's table)
    "test_serving.py",  # 76
    "test_retraining_draws.py",  # ~61 (three streams)
    "test_training.py",  # 57
    "test_real_drift.py",  # ~55
    "test_tables.py",  # 47
    "test_contract.py",  # 46
    "test_replicas.py",  # 44
    "test_production_faults.py",  # 43
    "test_alerting.py",  # 32
    "test_infra.py",  # 31
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier (``-m unit``, ``-m integration``); longest first."""
    for item in items:
        folder = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        item.add_marker(TIERS[folder])
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.fspath).name, len(rank)))


def _settings(root: Path) -> Settings:
    return Settings(
        home=root / "home",
        mlflow_tracking_uri=tracking_store(root),
        artifact_location=(root / "artifacts").as_uri(),
        spec_paths=EXAMPLES,
        predictions_url=f"sqlite:///{root / 'predictions.db'}",
        bentoml_home=root / "bentoml",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An empty project: every store under ``tmp_path``."""
    return _settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Settings:
    """A store where breast_cancer and diabetes have champions (and bentos), trained once.

    Shared by every test that reads it and changes nothing in it; a test that moves an alias or
    registers a version works on a copy (``harness.registries.registry_copy``). Under xdist the
    workers share its stores too: the first to ask trains them under a lock, the others wait and
    read them (each training cost 23-45 s of a core, measured).
    """
    if worker_id == "master":
        return _trained(tmp_path_factory.mktemp("trained"))
    shared = tmp_path_factory.getbasetemp().parent
    root = shared / "trained"
    with (shared / "trained.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed halfway
            _trained(root)
            (root / "done").touch()
    # The stores are shared; the home and the BentoML home are each worker's own copy: a service
    # wipes and fills $BENTOML_HOME/prometheus_multiproc_dir, so two services on one BentoML
    # home count each other's requests (seen: a worker's 422s in the other's counters).
    mine = tmp_path_factory.mktemp("trained-here")
    for folder in ("home", "bentoml"):
        shutil.copytree(root / folder, mine / folder, dirs_exist_ok=True)
    return replace(_settings(root), home=mine / "home", bentoml_home=mine / "bentoml")


def _trained(root: Path) -> Settings:
    settings = _settings(root)
    for job in ("train_breast_cancer", "train_diabetes"):
        assert train(settings, EXAMPLES, job).success
    return settings


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_cluster() as cluster:
        yield cluster
