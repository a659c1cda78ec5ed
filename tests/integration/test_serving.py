"""The service over HTTP: a real `bentoml serve` on a real MLflow store, logging to SQLite or
PostgreSQL."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from harness.fuzz import fuzz
from harness.project import API_KEY, AUTH, service_env
from harness.registries import champion_estimator
from harness.servers import bentoml_server, child_env
from serving.store.ids import new_prediction_id
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow

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
        with httpx.Client(timeout=30, headers=AUTH) as http:
            yield Served(base, store, http)
        store.dispose()


def test_single_prediction_is_answered_and_logged(served: Served, trained):
    response = served.predict(cancer_records(1))
    assert response.status_code == 200
    [answer] = response.json()["predictions"]
    assert answer["prediction"] in (0, 1)
    assert set(answer["probabilities"]) == {"0", "1"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-9
    champion = MlflowClient(
        trained.mlflow_tracking_uri, trained.mlflow_tracking_uri
    ).get_model_version_by_alias("breast_cancer", "champion")
    assert (answer["model_name"], answer["model_version"]) == (
        "breast_cancer",
        str(champion.version),
    )
    row = served.store.prediction(answer["prediction_id"])
    assert row is not None
    assert row.features == cancer_records(1)[0]
    assert row.prediction == answer["prediction"]
    assert row.model_version == answer["model_version"]


def test_a_record_breaking_the_specs_column_rules_is_answered_and_logged_with_them(
    served: Served,
):
    # examples/classification.yaml: mean radius {min: 0, nullable: false}; the signature admits
    # any double, the rule says what is fit to learn from.
    fine, negative = cancer_records(2)
    negative["mean radius"] = -3.5
    response = served.predict([fine, negative])
    assert response.status_code == 200
    first, second = (
        served.store.prediction(a["prediction_id"]) for a in response.json()["predictions"]
    )
    assert first.violations is None
    assert second.violations == ["mean radius: below the minimum 0.0"]
    assert second.features == negative


def test_batch_prediction_logs_every_record_with_unique_ids(served: Served):
    before = served.store.count_predictions("breast_cancer")
    response = served.predict(cancer_records(100, start=50))
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len(answers) == 100
    ids = {a["prediction_id"] for a in answers}
    assert len(ids) == 100
    assert {uuid.UUID(i).version for i in ids} == {7}  # time-ordered: the log's index stays local
    assert served.store.count_predictions("breast_cancer") == before + 100
    assert all(served.store.prediction(i) is not None for i in list(ids)[:10])


def test_predictions_match_the_champion_model(served: Served, trained):
    model = champion_estimator(trained, "breast_cancer")
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

    retry = served.http.post(url, json={"prediction_id": pid, "ground_truth": 1})
    assert (retry.status_code, retry.json()["status"]) == (200, "already stored")
    again = served.http.post(url, json={"prediction_id": pid, "ground_truth": 0})
    assert again.status_code == 409
    assert "already has another label" in again.json()["errors"][0]["problem"]
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


def test_feedback_for_another_models_prediction_is_404_and_stores_nothing(served: Served):
    theirs = PredictionRow(new_prediction_id(), time.time(), "diabetes", "1", {"bmi": 0.1}, 151.0)
    served.store.insert_predictions([theirs])
    answer = served.http.post(
        f"{served.url}/feedback", json={"prediction_id": theirs.prediction_id, "ground_truth": 1}
    )
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["field"] == "prediction_id"
    assert theirs.prediction_id not in set(served.store.labelled("diabetes").prediction_id)
    assert theirs.prediction_id not in set(served.store.labelled("breast_cancer").prediction_id)


def test_feedback_batch_reports_each_item(served: Served):
    answers = served.predict(cancer_records(3, start=20)).json()["predictions"]
    items = [
        {"prediction_id": answers[0]["prediction_id"], "ground_truth": 0},
        {"prediction_id": "0" * 32, "ground_truth": 1},
        {"prediction_id": answers[0]["prediction_id"], "ground_truth": 1},
        {"prediction_id": answers[0]["prediction_id"], "ground_truth": 0},
    ]
    bad = [*items, {"prediction_id": answers[1]["prediction_id"], "ground_truth": "x"}]
    refused = served.http.post(f"{served.url}/feedback/batch", json={"feedback": bad})
    assert refused.status_code == 422  # checked whole before anything is stored
    assert [e["field"] for e in refused.json()["errors"]] == ["feedback.4.ground_truth"]
    assert answers[0]["prediction_id"] not in set(
        served.store.labelled("breast_cancer").prediction_id
    )
    response = served.http.post(f"{served.url}/feedback/batch", json={"feedback": items})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201, 404, 409, 200]


def test_model_info_reports_the_served_version(served: Served, trained):
    info = served.http.get(f"{served.url}/model").json()
    version = MlflowClient(
        trained.mlflow_tracking_uri, trained.mlflow_tracking_uri
    ).get_model_version_by_alias("breast_cancer", "champion")
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
    [answer] = served.predict(cancer_records(1, start=300)).json()["predictions"]
    right = {"prediction_id": answer["prediction_id"], "ground_truth": answer["prediction"]}
    assert served.http.post(f"{served.url}/feedback", json=right).status_code == 201
    served.http.post(f"{served.url}/feedback", json={"prediction_id": "0" * 32, "ground_truth": 1})
    text = served.http.get(f"{served.url}/metrics").text
    assert 'mlserve_predictions_total{model="breast_cancer"' in text
    assert "mlserve_prediction_latency_seconds_bucket" in text
    assert 'mlserve_feedback_total{model="breast_cancer",status="404"}' in text
    assert 'mlserve_served_model_version{model="breast_cancer"}' in text
    version = answer["model_version"]
    assert (
        f'mlserve_labelled_predictions_total{{model="breast_cancer",version="{version}"}}' in text
    )
    assert f'mlserve_labelled_correct_total{{model="breast_cancer",version="{version}"}}' in text


GOOD = cancer_records(1)[0]


def _record(drop: str | None = None, **changes) -> dict:
    """GOOD with one feature dropped and/or others changed."""
    return {**{k: v for k, v in GOOD.items() if k != drop}, **changes}


def _raw(records_json: str) -> str:
    return '{"records": [' + records_json + "]}"


def _good_json_with(field: str, literal: str) -> str:
    import json

    parts = [
        f"{json.dumps(k)}: {literal if k == field else json.dumps(v)}" for k, v in GOOD.items()
    ]
    return "{" + ", ".join(parts) + "}"


BAD_REQUESTS = [
    # (name, path, json body or raw string, status, words the body must contain)
    ("malformed JSON", "/predict", '{"records": [', 400, ["body", "malformed JSON"]),
    ("body is a list", "/predict", [GOOD], 422, ["body"]),
    ("records missing", "/predict", {"rows": [GOOD]}, 422, ["records", "Field required"]),
    ("records empty", "/predict", {"records": []}, 422, ["records", "at least 1"]),
    ("records not a list", "/predict", {"records": 5}, 422, ["records", "valid list"]),
    ("record not an object", "/predict", {"records": [5]}, 422, ["records.0", "dictionary"]),
    (
        "missing feature",
        "/predict",
        {"records": [_record(drop="mean radius")]},
        422,
        ["mean radius", "missing field"],
    ),
    (
        "extra feature",
        "/predict",
        {"records": [_record(colour="red")]},
        422,
        ["colour", "unexpected field"],
    ),
    (
        "string value",
        "/predict",
        {"records": [_record(**{"mean area": "big"})]},
        422,
        ["mean area", "expected a number"],
    ),
    (
        "boolean value",
        "/predict",
        {"records": [_record(**{"mean area": True})]},
        422,
        ["mean area", "expected a number"],
    ),
    (
        "null value",
        "/predict",
        {"records": [_record(**{"mean area": None})]},
        422,
        ["mean area", "expected a number"],
    ),
    (
        "list value",
        "/predict",
        {"records": [_record(**{"mean area": [1, 2]})]},
        422,
        ["mean area", "expected a number"],
    ),
    (
        "NaN value",
        "/predict",
        _raw(_good_json_with("mean area", "NaN")),
        422,
        ["mean area", "finite"],
    ),
    (
        "Infinity value",
        "/predict",
        _raw(_good_json_with("mean area", "Infinity")),
        422,
        ["mean area", "finite"],
    ),
    (
        "-Infinity value",
        "/predict",
        _raw(_good_json_with("worst area", "-Infinity")),
        422,
        ["worst area", "finite"],
    ),
    (
        "second record bad",
        "/predict",
        {"records": [GOOD, _record(**{"mean radius": "x"})]},
        422,
        ['"record":1', "mean radius"],
    ),
    ("too many records", "/predict", {"records": [GOOD] * 1001}, 422, ["records", "at most 1000"]),
    (
        "oversized body",
        "/predict",
        {"records": [GOOD] * 900, "pad": "x" * (1 << 20)},
        413,
        ["body", "larger than"],
    ),
    (
        "feedback without id",
        "/feedback",
        {"ground_truth": 1},
        422,
        ["prediction_id", "Field required"],
    ),
    (
        "feedback without label",
        "/feedback",
        {"prediction_id": "a" * 32},
        422,
        ["ground_truth", "Field required"],
    ),
    (
        "feedback id too long",
        "/feedback",
        {"prediction_id": "a" * 99, "ground_truth": 1},
        422,
        ["prediction_id", "should match pattern"],
    ),
    (
        "feedback id not a string",
        "/feedback",
        {"prediction_id": 7, "ground_truth": 1},
        422,
        ["prediction_id", "valid string"],
    ),
    ("feedback malformed JSON", "/feedback", "{nope", 400, ["malformed JSON"]),
    ("feedback batch empty", "/feedback/batch", {"feedback": []}, 422, ["feedback", "at least 1"]),
    (
        "feedback batch item bad",
        "/feedback/batch",
        {"feedback": [{"ground_truth": 1}]},
        422,
        ["feedback.0.prediction_id", "Field required"],
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [b[1:] for b in BAD_REQUESTS],
    ids=[b[0] for b in BAD_REQUESTS],
)
def test_bad_requests_get_a_4xx_naming_the_problem(served: Served, path, body, status, words):
    before = served.store.count_predictions()
    if isinstance(body, str):
        response = served.http.post(
            f"{served.url}{path}", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = served.http.post(f"{served.url}{path}", json=body)
    assert response.status_code == status, response.text
    compact = response.text.replace(" ", "")
    for word in words:
        assert word.replace(" ", "") in compact, (word, response.text)
    assert "errors" in response.json()
    assert served.store.count_predictions() == before


@pytest.mark.parametrize("served", ["sqlite"], indirect=True)
def test_a_fuzzer_finds_no_5xx_from_the_classifier(served: Served, tmp_path):
    """Far-out records once gave NaN probabilities answered as nulls; now each is a 422.

    One store is enough: what the fuzzer varies is the input, which both stores see the same.
    """
    result = fuzz(served.url, API_KEY, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_mlserve_predict_writes_a_csv_from_the_running_service(served: Served, trained, tmp_path):
    rows = CANCER.iloc[100:350].copy()
    rows.to_csv(tmp_path / "in.csv", index=False)
    mlserve = str(Path(sys.executable).parent / "mlserve")
    env = child_env({"MLSERVE_HOME": str(tmp_path), "MLSERVE_API_KEY": API_KEY})
    args = [mlserve, "predict", "breast_cancer", str(tmp_path / "in.csv"), "--url", served.url]
    done = subprocess.run([*args, "--batch", "100"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(io.StringIO(done.stdout))
    assert len(out) == 250
    champion = MlflowClient(
        trained.mlflow_tracking_uri, trained.mlflow_tracking_uri
    ).get_model_version_by_alias("breast_cancer", "champion")
    model = champion_estimator(trained, "breast_cancer")
    assert out["prediction"].tolist() == model.predict(rows).tolist()
    assert np.allclose(out["probability_1"], model.predict_proba(rows)[:, 1])
    assert set(out["model_version"].astype(str)) == {str(champion.version)}
    assert all(served.store.prediction(pid) is not None for pid in out["prediction_id"][:5])

    rows.iloc[120, 3] = "big"  # row 121 of the file
    rows.to_csv(tmp_path / "bad.csv", index=False)
    args[3] = str(tmp_path / "bad.csv")
    refused = subprocess.run(args, env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert f"row 121: {CANCER.columns[3]}: expected a number" in refused.stderr
