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
# The integration modules that hold a worker longest (seconds of a worker, measured on four
# workers, 2026-12-04), run first: with a module to a worker, one of them started last is the
# whole tier's tail while the other workers idle. The Makefile turns off xdist's own reordering
# (by number of tests), which otherwise put this one-test benchmark last: 2:30 alone at the end.
LONGEST_FIRST = (
    "test_component.py",  # 301
    "test_serving_faults.py",  # 271
    "test_ui.py",  # 234
    "test_serving.py",  # 218
    "test_loop_guardrails.py",  # 214
    "test_bench.py",  # 154
    "test_contract.py",  # 139
    "test_tables.py",  # 129
    "test_cli.py",  # 122
    "test_retraining_draws.py",  # 85
    "test_training.py",  # 83
    "test_twin.py",  # 82
    "test_poisoning.py",  # 80
    "test_bad_data.py",  # 68
    "test_run_queue.py",  # ~70 (new: two trainings through the daemon's queue)
    "test_replicas.py",  # ~55 (new: three replicas and haproxy)
    "test_loop.py",  # 50
    "test_infra.py",  # 46
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
