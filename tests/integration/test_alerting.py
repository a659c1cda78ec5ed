"""Alerts that reach someone, and a dashboard whose every panel has data: the stack's Prometheus
and Alertmanager configuration as real processes, scraping a real `bentoml serve`, routing to a
webhook receiver. Grafana's server cannot be installed here, so its panels' queries are run
against that Prometheus instead."""

from __future__ import annotations

import json
import time

import httpx
from sklearn.datasets import load_breast_cancer

from harness.cli import mlserve
from harness.monitoring import INFRA, monitoring
from harness.project import AUTH, service_env
from harness.registries import champion_copy, registry_copy
from harness.servers import bentoml_server
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import PROJECT_ROOT
from serving.registry import DriftReport, record_drift
from serving.store import shadow
from serving.store.predictions import PredictionStore

CANCER = load_breast_cancer(as_frame=True)
# Panels that stay empty on healthy classifier traffic, and why; every other panel must show data.
EMPTY_WHEN_HEALTHY = {
    "Error rate (5xx per s)": "no server errors",
    "Live RMSE per version": "a classifier serves",
}


def _wait(what: str, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} after {timeout} s"
        time.sleep(0.5)


def _traffic(url: str, rows: int, offset: int, before_labels=lambda: True) -> None:
    """Predictions labelled with their true classes (once ``before_labels`` holds), one label
    sent twice (a 409)."""
    records = CANCER.data.iloc[offset : offset + rows]
    body = {"records": records.to_dict("records")}
    answers = httpx.post(f"{url}/predict", json=body, headers=AUTH, timeout=30).json()
    _wait("ready for labels", before_labels)
    items = [
        {"prediction_id": a["prediction_id"], "ground_truth": int(t)}
        for a, t in zip(answers["predictions"], CANCER.target.iloc[offset:], strict=False)
    ]
    stored = httpx.post(f"{url}/feedback/batch", json={"feedback": items}, headers=AUTH)
    assert stored.status_code == 200, stored.text
    again = {**items[0], "ground_truth": 1 - items[0]["ground_truth"]}
    assert httpx.post(f"{url}/feedback", json=again, headers=AUTH).status_code == 409


def _query(prom: str, expr: str) -> list:
    answer = httpx.get(f"{prom}/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def test_a_rollback_and_drift_reach_the_webhook_and_every_panel_shows_data(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    first, second = champion_copy(uri, "breast_cancer")
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": uri,
        "MLSERVE_PREDICTIONS_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
        "MLSERVE_SPECS": str(PROJECT_ROOT / "examples/classification.yaml"),
    }
    serve_env = {
        **service_env(trained, "breast_cancer", env["MLSERVE_PREDICTIONS_URL"], tmp_path / "s"),
        **env,
    }
    with (
        bentoml_server("serving.service:ModelService", serve_env, tmp_path / "s.log") as url,
        monitoring(tmp_path, url.removeprefix("http://")) as (prom, webhook),
    ):
        _traffic(url, 60, 0)
        assert httpx.post(f"{url}/predict", json={"records": []}, headers=AUTH).status_code == 422
        assert mlserve(["promote", "breast_cancer", str(second.version), "--reason", "x"], env)
        _wait(
            "v2 serving",
            lambda: (
                _query(prom, "max(mlserve_served_model_version)")
                and float(_query(prom, "max(mlserve_served_model_version)")[0]["value"][1])
                == float(second.version)
            ),
        )
        # The first version in shadow: its labelled answers beside the champion's.
        shadowing = ["promote", "breast_cancer", str(first.version), "--shadow", "--reason", "x"]
        assert mlserve(shadowing, env).returncode == 0
        _wait("the shadow", lambda: httpx.get(f"{url}/model").json().get("shadow_version"))
        store = PredictionStore(env["MLSERVE_PREDICTIONS_URL"])

        def logged() -> bool:  # labels after the shadow answers, to be counted beside them
            return shadow.shadowed(store, "breast_cancer", str(first.version)) == 60

        _traffic(url, 60, 60, before_labels=logged)
        store.dispose()
        assert webhook.firing("ChampionRolledBack") == []  # a promotion is not a rollback
        # The drift check's verdict, as the watch job records it, reaches Prometheus and a person.
        found = DriftReport(time.time(), 500, ["mean texture", "mean radius"], "accuracy", 0.91)
        record_drift(MlflowRegistry(tracking_uri=uri).client, "breast_cancer", found)
        _wait("the drift alert at the webhook", lambda: webhook.firing("FeatureDrift"))
        [drifted] = webhook.firing("FeatureDrift")
        assert drifted["labels"]["model"] == "breast_cancer"
        assert drifted["annotations"]["summary"].startswith("breast_cancer: 2 features")
        rolled = mlserve(["rollback", "breast_cancer", "--reason", "worse"], env)
        assert rolled.returncode == 0, rolled.stderr

        _wait("the rollback alert at the webhook", lambda: webhook.firing("ChampionRolledBack"))
        [alert] = webhook.firing("ChampionRolledBack")
        assert alert["labels"]["model"] == "breast_cancer"
        assert alert["labels"]["severity"] == "warning"
        assert "rolled back" in alert["annotations"]["summary"]

        dashboard = json.loads((INFRA / "grafana/dashboards/mlserve.json").read_text())
        panels = {
            f"{panel['title']} [{i}]": (panel["title"], target["expr"])
            for panel in dashboard["panels"]
            for i, target in enumerate(panel["targets"])
        }

        def blank() -> dict[str, str]:
            return {
                name: expr
                for name, (title, expr) in panels.items()
                if title not in EMPTY_WHEN_HEALTHY and not _query(prom, expr)
            }

        _wait("every panel's query showing data", lambda: not blank(), 30)
        for name, (title, expr) in panels.items():
            if title in EMPTY_WHEN_HEALTHY:
                assert _query(prom, expr) == [], (name, EMPTY_WHEN_HEALTHY[title])
