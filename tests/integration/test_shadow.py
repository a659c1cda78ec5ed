"""The shadow challenger in a real `bentoml serve`: it answers no one, its answers are logged beside
the champion's, and once labels arrive the two are compared on the same requests."""

from __future__ import annotations

import json
import re
import time

import dagster as dg
import httpx
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score
from sklearn.tree import DecisionTreeClassifier

from harness.cli import mlserve
from harness.project import API_KEY, AUTH, service_env
from harness.registries import champion_estimator, register_new_version, registry_copy
from harness.servers import bentoml_server
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.shadow import build_shadow_sensor
from mlserve_assets.settings import PROJECT_ROOT
from mlserve_assets.spec.loader import load_specs
from serving.http.auth import key_id
from serving.store import shadow
from serving.store.moves import history
from serving.store.predictions import PredictionStore

CANCER = load_breast_cancer(as_frame=True)
TRAFFIC, TRUTH = CANCER.data.iloc[-150:], CANCER.target.iloc[-150:]
EXAMPLE = PROJECT_ROOT / "examples/classification.yaml"


def _wait(what: str, ready, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what} after {timeout} s"
        time.sleep(0.2)


def _metric(text: str, name: str) -> float:
    found = re.findall(rf"^{re.escape(name)} ([\d.e+]+)$", text, flags=re.MULTILINE)
    return float(found[0]) if found else 0.0


def _version(http: httpx.Client, url: str) -> str:
    body = {"records": TRAFFIC.head(1).to_dict("records")}
    return http.post(f"{url}/predict", json=body).json()["predictions"][0]["model_version"]


def _shadow_tick(uri: str, predictions: str, trusted: list[str]) -> str:
    """One evaluation of the shadow sensor, with ``trusted`` label senders."""
    [spec] = [m for m in load_specs([EXAMPLE]) if m.name == "breast_cancer"]
    resources = {
        "prediction_log": PredictionLogResource(url=predictions, trusted_sources=trusted),
        "registry": MlflowRegistry(tracking_uri=uri),
    }
    with dg.build_sensor_context(resources=resources) as context:
        return build_shadow_sensor(spec).evaluate_tick(context).skip_message or ""


def test_a_better_challenger_proves_itself_in_shadow_without_answering(trained, tmp_path):
    uri = registry_copy(trained, tmp_path)
    good = champion_estimator(trained, "breast_cancer")
    registry = MlflowRegistry(tracking_uri=uri)
    first = str(registry.client.get_model_version_by_alias("breast_cancer", "champion").version)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(CANCER.data, CANCER.target)
    weak = register_new_version(registry, "breast_cancer", stump, CANCER.data)
    # A challenger that cannot take the service's records: it needs a column they lack.
    odd_rows = CANCER.data.assign(extra=1.0)
    odd = DecisionTreeClassifier(max_depth=2).fit(odd_rows, CANCER.target)
    broken = register_new_version(registry, "breast_cancer", odd, odd_rows)
    predictions = f"sqlite:///{tmp_path / 'predictions.db'}"
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": uri,
        "MLSERVE_PREDICTIONS_URL": predictions,
        "MLSERVE_SPECS": str(EXAMPLE),
    }
    serve_env = {**service_env(trained, "breast_cancer", predictions, tmp_path / "s.db"), **env}

    def run(*args: str) -> str:
        done = mlserve(list(args), env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # The weak model serves; the good one is the challenger, in shadow.
    run("promote", "breast_cancer", weak, "--reason", "a weak champion")
    assert "scored in shadow" in run(
        "promote", "breast_cancer", first, "--shadow", "--reason", "prove it on live traffic"
    )
    with bentoml_server("serving.service:ModelService", serve_env, tmp_path / "s.log") as url:
        http = httpx.Client(headers=AUTH, timeout=30)
        _wait(
            "the challenger loaded",
            lambda: http.get(f"{url}/model").json().get("shadow_version") == first,
        )
        answers = []
        for chunk in range(0, len(TRAFFIC), 25):  # several requests, as clients send them
            body = {"records": TRAFFIC.iloc[chunk : chunk + 25].to_dict("records")}
            answer = http.post(f"{url}/predict", json=body)
            assert answer.status_code == 200, answer.text
            answers += answer.json()["predictions"]
        # Answered by the champion alone, exactly as it answers without a shadow.
        assert {a["model_version"] for a in answers} == {weak}
        assert [a["prediction"] for a in answers] == stump.predict(TRAFFIC).tolist()
        store = PredictionStore(predictions)
        _wait(
            "every shadow answer logged",
            lambda: shadow.shadowed(store, "breast_cancer", first) == len(TRAFFIC),
        )
        items = [
            {"prediction_id": a["prediction_id"], "ground_truth": int(t)}
            for a, t in zip(answers, TRUTH, strict=True)
        ]
        assert http.post(f"{url}/feedback/batch", json={"feedback": items}).status_code == 200
        metrics = http.get(f"{url}/metrics").text
        label = f'model="breast_cancer",version="{first}"'
        assert _metric(metrics, f"mlserve_shadow_predictions_total{{{label}}}") == len(TRAFFIC)
        agreed = sum(good.predict(TRAFFIC) == stump.predict(TRAFFIC))
        assert _metric(metrics, f"mlserve_shadow_agreed_total{{{label}}}") == agreed
        # Prometheus compares the two on the same labelled requests as the labels arrive.
        assert _metric(metrics, f"mlserve_shadow_labelled_total{{{label}}}") == len(TRAFFIC)
        for role, model in (("challenger", good), ("served", stump)):
            right = sum(model.predict(TRAFFIC) == TRUTH)
            labels = f'model="breast_cancer",role="{role}",version="{first}"'  # sorted
            assert _metric(metrics, f"mlserve_shadow_labelled_correct_total{{{labels}}}") == right

        # Compared on the same labelled requests, against an independent computation.
        status = json.loads(run("status", "breast_cancer", "--json"))["shadow"]
        assert status["version"] == first and status["labelled"] == len(TRAFFIC)
        assert status["score"] == accuracy_score(TRUTH, good.predict(TRAFFIC))
        assert status["served"] == accuracy_score(TRUTH, stump.predict(TRAFFIC))
        assert status["gain_interval"][0] > 0  # known better, and the interval says so
        assert f"shadow       v{first} scored {len(TRAFFIC)} requests" in run(
            "status", "breast_cancer"
        )

        # Promoted on that evidence by the shadow sensor, though not on the labels of one key no
        # one declared trusted; then the shadow stops, and the service answers with it.
        assert "not promoted: key" in _shadow_tick(uri, predictions, trusted=[])
        said = _shadow_tick(uri, predictions, trusted=[key_id(API_KEY)])
        assert said.startswith(f"promoted: v{first} proved better in shadow"), said
        moved = history(store, "breast_cancer")[-1]
        assert (moved.from_version, moved.to_version) == (weak, first)
        assert moved.moved_by == "sensor shadow_breast_cancer"
        assert moved.evidence["labelled"] == 120  # the milestone: 30, 60, 120 of 150 labels
        _wait("the promoted challenger answering", lambda: _version(http, url) == first)
        assert "shadow_version" not in http.get(f"{url}/model").json()

        # A challenger that raises on every request changes no answer; its failures are counted.
        run("promote", "breast_cancer", broken, "--shadow", "--reason", "a broken challenger")
        _wait(
            "the broken challenger loaded",
            lambda: http.get(f"{url}/model").json().get("shadow_version") == broken,
        )
        body = {"records": TRAFFIC.head(10).to_dict("records")}
        again = http.post(f"{url}/predict", json=body).json()["predictions"]
        assert [a["prediction"] for a in again] == good.predict(TRAFFIC.head(10)).tolist()
        _wait(
            "the failure counted",
            lambda: (
                _metric(
                    http.get(f"{url}/metrics").text,
                    'mlserve_shadow_skipped_total{model="breast_cancer",reason="failed"}',
                )
                == 10
            ),
        )
        assert shadow.shadowed(store, "breast_cancer", broken) == 0

        # Stopped: no challenger.
        assert "none, no shadow" in run("rollback", "breast_cancer", "--shadow", "--reason", "done")
        _wait("the shadow stopped", lambda: "shadow_version" not in http.get(f"{url}/model").json())
        store.dispose()
