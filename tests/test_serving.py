"""The service over HTTP: a real `bentoml serve` on a real MLflow store, logging to SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from mlserve_assets.prediction_store import PredictionStore
from tests.conftest import service_env
from tests.services import bentoml_server

CANCER = load_breast_cancer(as_frame=True).frame.drop(columns="target")


def cancer_records(n: int, start: int = 0) -> list[dict]:
    return CANCER.iloc[start : start + n].to_dict("records")


@dataclass
class Served:
    url: str
    store: PredictionStore
    http: httpx.Client

    def predict(self, records: list[dict]) -> httpx.Response:
        return self.http.post(f"{self.url}/predict", json={"records": records})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request, trained, tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create_database("serving")
    else:
        url = f"sqlite:///{root / 'predictions.db'}"
    env = service_env(trained, "breast_cancer", url, root / "spool.db")
    with bentoml_server("serving.service:ModelService", env, root / "server.log") as base:
        store = PredictionStore(url)
        with httpx.Client(timeout=30) as http:
            yield Served(base, store, http)
        store.dispose()


def test_single_prediction_is_answered_and_logged(served: Served, trained):
    response = served.predict(cancer_records(1))
    assert response.status_code == 200
    [answer] = response.json()["predictions"]
    assert answer["prediction"] in (0, 1)
    assert set(answer["probabilities"]) == {"0", "1"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-9
    champion = MlflowClient(trained.mlflow_tracking_uri).get_model_version_by_alias(
        "breast_cancer", "champion"
    )
    assert (answer["model_name"], answer["model_version"]) == (
        "breast_cancer",
        str(champion.version),
    )
    row = served.store.prediction(answer["prediction_id"])
    assert row is not None
    assert row.features == cancer_records(1)[0]
    assert row.prediction == answer["prediction"]
    assert row.model_version == answer["model_version"]


def test_batch_prediction_logs_every_record_with_unique_ids(served: Served):
    before = served.store.count_predictions("breast_cancer")
    response = served.predict(cancer_records(100, start=50))
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len(answers) == 100
    ids = {a["prediction_id"] for a in answers}
    assert len(ids) == 100
    assert served.store.count_predictions("breast_cancer") == before + 100
    assert all(served.store.prediction(i) is not None for i in list(ids)[:10])


def test_predictions_match_the_champion_model(served: Served, trained):
    import mlflow

    mlflow.set_registry_uri(trained.mlflow_tracking_uri)
    model = mlflow.sklearn.load_model("models:/breast_cancer@champion")
    records = cancer_records(40, start=200)
    answers = served.predict(records).json()["predictions"]
    assert [a["prediction"] for a in answers] == model.predict(CANCER.iloc[200:240]).tolist()


def test_feedback_happy_unknown_duplicate_and_wrong_type(served: Served):
    [answer] = served.predict(cancer_records(1, start=7)).json()["predictions"]
    pid = answer["prediction_id"]
    url = f"{served.url}/feedback"

    ok = served.http.post(url, json={"prediction_id": pid, "ground_truth": 1})
    assert ok.status_code == 201
    labelled = served.store.labelled("breast_cancer")
    assert labelled.loc[labelled.prediction_id == pid, "ground_truth"].tolist() == [1]

    again = served.http.post(url, json={"prediction_id": pid, "ground_truth": 0})
    assert again.status_code == 409
    assert "already has ground truth" in again.json()["errors"][0]["problem"]
    labelled = served.store.labelled("breast_cancer")
    assert labelled.loc[labelled.prediction_id == pid, "ground_truth"].tolist() == [1]

    unknown = served.http.post(url, json={"prediction_id": "f" * 32, "ground_truth": 1})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "prediction_id"

    [other] = served.predict(cancer_records(1, start=8)).json()["predictions"]
    for bad in ("malignant", 2, 0.5, True, None, [1]):
        wrong = served.http.post(
            url, json={"prediction_id": other["prediction_id"], "ground_truth": bad}
        )
        assert wrong.status_code == 422, bad
        assert wrong.json()["errors"][0]["field"] == "ground_truth"


def test_feedback_batch_reports_each_item(served: Served):
    answers = served.predict(cancer_records(3, start=20)).json()["predictions"]
    items = [
        {"prediction_id": answers[0]["prediction_id"], "ground_truth": 0},
        {"prediction_id": answers[1]["prediction_id"], "ground_truth": "x"},
        {"prediction_id": "0" * 32, "ground_truth": 1},
        {"prediction_id": answers[0]["prediction_id"], "ground_truth": 1},
    ]
    response = served.http.post(f"{served.url}/feedback/batch", json={"feedback": items})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201, 422, 404, 409]


def test_model_info_reports_the_served_version(served: Served, trained):
    info = served.http.get(f"{served.url}/model").json()
    version = MlflowClient(trained.mlflow_tracking_uri).get_model_version_by_alias(
        "breast_cancer", "champion"
    )
    assert info["name"] == "breast_cancer"
    assert info["version"] == str(version.version)
    assert info["alias"] == "champion"
    assert info["mlflow_run_id"] == version.run_id
    assert info["training_metric"]["name"] == "accuracy"
    assert info["training_metric"]["value"] > 0.9
    assert [f["name"] for f in info["features"]] == list(CANCER.columns)
    assert info["classes"] == [0, 1]


def test_probes_and_metrics(served: Served):
    assert served.http.get(f"{served.url}/readyz").status_code == 200
    assert served.http.get(f"{served.url}/livez").status_code == 200
    served.predict(cancer_records(2))
    served.http.post(f"{served.url}/feedback", json={"prediction_id": "nope", "ground_truth": 1})
    text = served.http.get(f"{served.url}/metrics").text
    assert 'mlserve_predictions_total{model="breast_cancer"' in text
    assert "mlserve_prediction_latency_seconds_bucket" in text
    assert 'mlserve_feedback_total{model="breast_cancer",status="404"}' in text
    assert 'mlserve_served_model_version{model="breast_cancer"}' in text
