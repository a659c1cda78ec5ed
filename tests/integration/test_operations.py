"""The operator's day: status, history, promote and rollback through `mlserve`, with a running
service following each move, and every move recorded. The commands run in-process
(``harness.cli``); the service is a real process."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from harness.cli import mlserve
from harness.project import AUTH, copy_moves, service_env
from harness.registries import champion_copy, registry_copy
from harness.servers import bentoml_server
from mlserve_assets.settings import PROJECT_ROOT

MLSERVE = str(Path(sys.executable).parent / "mlserve")
RECORD = load_breast_cancer(as_frame=True).frame.drop(columns="target").iloc[0].to_dict()


def _served_version(url: str) -> str:
    answer = httpx.post(f"{url}/predict", json={"records": [RECORD]}, headers=AUTH, timeout=30)
    return answer.json()["predictions"][0]["model_version"]


def _wait_for_version(url: str, version: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (served := _served_version(url)) != version:
        assert time.monotonic() < deadline, f"still serving v{served}, wanted v{version}"
        time.sleep(0.2)


def test_promote_and_rollback_move_what_a_running_service_answers(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    first, second = champion_copy(uri, "breast_cancer")
    predictions = f"sqlite:///{tmp_path / 'predictions.db'}"
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": uri,
        "MLSERVE_PREDICTIONS_URL": predictions,
        "MLSERVE_SPECS": str(PROJECT_ROOT / "examples/classification.yaml"),
    }
    serve_env = {**service_env(trained, "breast_cancer", predictions, tmp_path / "s.db"), **env}
    with bentoml_server("serving.service:ModelService", serve_env, tmp_path / "s.log") as url:
        assert _served_version(url) == str(first.version)
        promoted = mlserve(
            ["promote", "breast_cancer", str(second.version), "--reason", "canary"], env
        )
        assert promoted.returncode == 0, promoted.stderr
        _wait_for_version(url, str(second.version))
        rolled = mlserve(["rollback", "breast_cancer", "--reason", "canary was worse"], env)
        assert rolled.returncode == 0, rolled.stderr
        assert f"v{second.version} -> v{first.version}" in rolled.stdout
        _wait_for_version(url, str(first.version))

    # After the trained project's own moves, which the service's log was given (service_env).
    moves = json.loads(mlserve(["history", "breast_cancer", "--json"], env).stdout)[-2:]
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in moves] == [
        (str(first.version), str(second.version), "canary"),
        (str(second.version), str(first.version), "canary was worse"),
    ]
    assert moves[0]["moved_by"].startswith("mlserve promote (")
    assert moves[1]["moved_by"].startswith("mlserve rollback (")
    assert moves[0]["moved_at"] <= moves[1]["moved_at"]
    text = mlserve(["history", "breast_cancer"], env).stdout
    assert f"v{second.version} -> v{first.version}" in text and "canary was worse" in text

    status = json.loads(mlserve(["status", "breast_cancer", "--json"], env).stdout)
    assert status["champion"]["version"] == str(first.version)
    assert status["champion"]["moved_by"].startswith("mlserve rollback (")
    assert status["champion"]["live_score"] is None  # no labels yet
    assert set(status["answering"]) == {str(first.version), str(second.version)}
    assert status["last_training"]["version"] == str(second.version)
    shown = mlserve(["status", "breast_cancer"], env).stdout
    assert f"champion     v{first.version} since" in shown and "no labels yet" in shown


def test_moves_that_cannot_happen_are_refused_with_exit_1(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": uri,
        "MLSERVE_PREDICTIONS_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
        "MLSERVE_SPECS": str(PROJECT_ROOT / "examples/classification.yaml"),
    }
    copy_moves(trained.predictions_url, env["MLSERVE_PREDICTIONS_URL"], "breast_cancer")
    current = MlflowClient(uri, uri).get_model_version_by_alias("breast_cancer", "champion")
    cases = [
        (["promote", "breast_cancer", "99", "--reason", "x"], "has no version 99"),
        (["promote", "breast_cancer", str(current.version), "--reason", "x"], "already the"),
        (["rollback", "breast_cancer", "--reason", "x"], "no recorded champion before"),
        (["status", "nosuch"], "no model 'nosuch'"),
    ]
    for args, words in cases:
        refused = mlserve(args, env)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert words in refused.stderr, (args, refused.stderr)
    missing_reason = mlserve(["promote", "breast_cancer", "1"], env)
    assert missing_reason.returncode == 2 and "--reason" in missing_reason.stderr
    alias = MlflowClient(uri, uri).get_model_version_by_alias("breast_cancer", "champion")
    assert alias.version == current.version
