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
from sklearn.metrics import accuracy_score
from sklearn.tree import DecisionTreeClassifier

from harness.cli import mlserve
from harness.project import AUTH, copy_moves, service_env
from harness.registries import champion_copy, register_new_version, registry_copy
from harness.servers import bentoml_server
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import PROJECT_ROOT

MLSERVE = str(Path(sys.executable).parent / "mlserve")
CANCER = load_breast_cancer(as_frame=True)
RECORD = CANCER.data.iloc[0].to_dict()


def _served_version(url: str) -> str:
    answer = httpx.post(f"{url}/predict", json={"records": [RECORD]}, headers=AUTH, timeout=30)
    return answer.json()["predictions"][0]["model_version"]


def _wait_for_version(url: str, version: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (served := _served_version(url)) != version:
        assert time.monotonic() < deadline, f"still serving v{served}, wanted v{version}"
        time.sleep(0.2)


def _labelled_traffic(url: str, n: int) -> tuple[list[int], list[dict]]:
    """``n`` records answered by the service at ``url``, each labelled with its true class."""
    records = CANCER.data.iloc[-n:]
    body = {"records": records.to_dict("records")}
    answers = httpx.post(f"{url}/predict", json=body, headers=AUTH, timeout=30).json()
    truth = [int(t) for t in CANCER.target.iloc[-n:]]
    items = [
        {"prediction_id": a["prediction_id"], "ground_truth": t}
        for a, t in zip(answers["predictions"], truth, strict=True)
    ]
    labelled = httpx.post(f"{url}/feedback/batch", json={"feedback": items}, headers=AUTH)
    assert labelled.status_code == 200, labelled.text
    return truth, answers["predictions"]


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
        # Counted for the alert on rollbacks; the promotion before it was not one.
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert 'mlserve_champion_rollbacks_total{model="breast_cancer"} 1.0' in metrics
        truth, answers = _labelled_traffic(url, 120)

    # Replay: the version that answered scores exactly what it achieved live; a stump (a
    # known-worse model) ranks below it.
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(CANCER.data, CANCER.target)
    worse = register_new_version(
        MlflowRegistry(tracking_uri=uri), "breast_cancer", stump, CANCER.data
    )
    args = ["replay", "breast_cancer", worse, str(first.version), "--last", "120", "--json"]
    replayed = mlserve(args, env)
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    live = accuracy_score(truth, [a["prediction"] for a in answers])
    assert report["requests"] == 120
    assert report["served"] == {"score": live, "by_version": {str(first.version): 120}}
    best, second_best = report["versions"]
    assert (best["version"], best["score"], best["gain"]) == (str(first.version), live, 0.0)
    assert second_best["version"] == worse and second_best["interval"][1] < 0
    text = mlserve(args[:-1], env).stdout
    assert "replay of breast_cancer on 120 labelled logged requests" in text
    unknown = mlserve(["replay", "breast_cancer", "999"], env)
    assert unknown.returncode == 1 and "v999 of breast_cancer cannot be read" in unknown.stderr

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
    # Its live metric: the labelled traffic it answered, scored as replay scored it.
    assert status["champion"]["live_score"] == live
    assert set(status["answering"]) == {str(first.version), str(second.version)}
    assert status["last_training"]["version"] == worse  # the newest registered: the stump
    shown = mlserve(["status", "breast_cancer"], env).stdout
    assert f"champion     v{first.version} since" in shown


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
