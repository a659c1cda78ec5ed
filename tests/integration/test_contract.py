"""The service's contract over HTTP, configured as the production stack configures it.

A real `bentoml serve` of the diabetes regressor with a keys file (a rotated pair among them) and
the compose file's open scopes (none): keys and scopes, one error shape for every status the
service gives, the OpenAPI document checked against the model's own signature and training data,
and a fuzzer (Schemathesis) checking every answer against that document.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import jsonschema
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.models import Model
from sklearn.datasets import load_diabetes

from harness.fuzz import fuzz
from harness.project import service_env
from harness.servers import bentoml_server
from mlserve_assets.settings import PROJECT_ROOT
from serving.registry import download_version
from serving.store.predictions import PredictionStore

DIABETES = load_diabetes(as_frame=True).frame.drop(columns="target")
OLD, NEW = "old-feedback-key-0", "new-feedback-key-0"
PREDICT_ONLY, ADMIN = "predict-only-key-0", "admin-key-0123456"
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def _compose_default(value: str) -> str:
    """The value compose gives ``${NAME:-default}`` when NAME is unset."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Contract:
    url: str
    db: Path
    store: PredictionStore
    client: MlflowClient

    def post(self, path: str, key: str | None = NEW, **kwargs) -> httpx.Response:
        headers = {**(bearer(key) if key else {}), **kwargs.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def document(self) -> dict:
        return httpx.get(f"{self.url}/openapi.json", timeout=30).json()

    def rejected(self, endpoint: str, status: int) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        pattern = (
            rf'mlserve_rejected_requests_total{{endpoint="{endpoint}",status="{status}"}} (\S+)'
        )
        match = re.search(pattern, text)
        return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def contract(trained, tmp_path_factory) -> Iterator[Contract]:
    root = tmp_path_factory.mktemp("contract")
    keys = root / "api-keys"
    old_hash = hashlib.sha256(OLD.encode()).hexdigest()  # a rotated-out key, held as a hash
    keys.write_text(
        "# rotation: the old key stays valid until its clients have moved\n"
        f"feedback:sha256:{old_hash}\n"
        f"predict,feedback:{NEW}\n"
        f"predict:{PREDICT_ONLY}\n"
        f"admin:{ADMIN}\n"
    )
    db = root / "predictions.db"
    env = service_env(trained, "diabetes", f"sqlite:///{db}", root / "spool.db")
    del env["MLSERVE_API_KEYS"]
    serving_env = COMPOSE["services"]["serving-1"]["environment"]
    env |= {
        "MLSERVE_API_KEYS_FILE": str(keys),
        "MLSERVE_OPEN_SCOPES": _compose_default(serving_env["MLSERVE_OPEN_SCOPES"]),
        "MLSERVE_REQUEST_TIMEOUT": "2",
    }
    with bentoml_server("serving.service:ModelService", env, root / "server.log") as url:
        store = PredictionStore(f"sqlite:///{db}")
        uri = trained.mlflow_tracking_uri
        yield Contract(url, db, store, MlflowClient(uri, uri))
        store.dispose()


def _record(i: int = 0) -> dict:
    return DIABETES.iloc[i].to_dict()


def _predict_one(contract: Contract, i: int = 0) -> str:
    response = contract.post("/predict", json={"records": [_record(i)]})
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["prediction_id"]


# -- keys and scopes ---------------------------------------------------------------------------


def test_the_production_configuration_refuses_every_route_without_a_key(contract: Contract):
    before = contract.store.count_predictions()
    pid = _predict_one(contract)
    for path, body in [
        ("/predict", {"records": [_record()]}),
        ("/feedback", {"prediction_id": pid, "ground_truth": 100.0}),
        ("/feedback/batch", {"feedback": [{"prediction_id": pid, "ground_truth": 100.0}]}),
        ("/admin/reload", None),
    ]:
        response = contract.post(path, key=None, json=body)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["errors"][0]["field"] == "Authorization"
    assert httpx.get(f"{contract.url}/model", timeout=30).status_code == 401
    assert contract.store.count_predictions() == before + 1
    assert contract.store.labelled("diabetes").empty or pid not in set(
        contract.store.labelled("diabetes").prediction_id
    )


def test_a_wrong_key_is_401_and_a_missing_scope_403(contract: Contract):
    pid = _predict_one(contract, 1)
    label = {"prediction_id": pid, "ground_truth": 90.0}
    assert contract.post("/feedback", key="not-a-key", json=label).status_code == 401
    assert contract.post("/feedback", key=NEW[:-1], json=label).status_code == 401
    wrong_scope = contract.post("/feedback", key=PREDICT_ONLY, json=label)
    assert wrong_scope.status_code == 403
    assert "'feedback' scope" in wrong_scope.json()["errors"][0]["problem"]
    assert contract.post("/admin/reload", key=NEW).status_code == 403
    assert contract.post("/predict", key=ADMIN, json={"records": [_record()]}).status_code == 403
    reload = contract.post("/admin/reload", key=ADMIN)
    assert reload.status_code == 200
    assert reload.json()["name"] == "diabetes"
    assert pid not in set(contract.store.labelled("diabetes").prediction_id)


def test_rotated_keys_are_valid_at_once(contract: Contract):
    first, second = _predict_one(contract, 2), _predict_one(contract, 3)
    old = contract.post("/feedback", key=OLD, json={"prediction_id": first, "ground_truth": 1.0})
    new = contract.post("/feedback", key=NEW, json={"prediction_id": second, "ground_truth": 2.0})
    assert (old.status_code, new.status_code) == (201, 201)
    labelled = set(contract.store.labelled("diabetes").prediction_id)
    assert {first, second} <= labelled


# -- one error shape, every status --------------------------------------------------------------


def _raw_http(url: str, request: bytes, wait: float = 0.0) -> tuple[int, bytes]:
    """Send bytes over a socket (a slow client), return the status and the body."""
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(request)
        time.sleep(wait)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) == 0:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _chunked(body: bytes, key: str) -> bytes:
    head = (
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def _answers(contract: Contract) -> dict[int | str, tuple[int, bytes]]:
    """One request per error status the service gives a client, by status."""
    url, good = contract.url, {"records": [_record()]}
    big = b'{"records": [' + b",".join([b'{"age": 0.0}'] * 120_000) + b"]}"
    slow_body = (
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {NEW}\r\nContent-Length: 100\r\n\r\n"
        '{"records": ['
    ).encode()
    cases = {
        400: lambda: contract.post("/predict", content=b'{"records": [', headers=_JSON),
        401: lambda: contract.post("/predict", key=None, json=good),
        403: lambda: contract.post("/predict", key=ADMIN, json=good),
        404: lambda: httpx.get(f"{url}/no/such/path", headers=bearer(NEW), timeout=30),
        405: lambda: httpx.delete(f"{url}/predict", headers=bearer(NEW), timeout=30),
        408: lambda: _raw_http(url, slow_body, wait=3),
        413: lambda: contract.post("/predict", content=big, headers=_JSON),
        415: lambda: contract.post("/predict", content=b"records=1", headers=_FORM),
        422: lambda: contract.post("/predict", json={"records": [{"age": "old"}]}),
    }
    answers = {}
    for status, send in cases.items():
        response = send()
        answers[status] = (
            response if isinstance(response, tuple) else (response.status_code, response.content)
        )
    answers["413 chunked"] = _raw_http(url, _chunked(big, NEW))
    return answers


_JSON = {"content-type": "application/json"}
_FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_every_error_answer_has_the_one_shape_and_is_counted(contract: Contract):
    errors_schema = _schema(contract.document(), "Errors")
    counted_before = {
        (endpoint, status): contract.rejected(endpoint, status)
        for endpoint in ("/predict", "other")
        for status in (400, 401, 403, 404, 405, 408, 413, 415, 422)
    }
    answers = _answers(contract)
    for status, (got, body) in answers.items():
        expected = int(str(status).split()[0])
        assert got == expected, (status, body)
        jsonschema.validate(httpx.Response(200, content=body).json(), errors_schema)
    for status in (400, 401, 403, 405, 408, 413, 415, 422):
        expected = 2 if status == 413 else 1
        assert contract.rejected("/predict", status) - counted_before[("/predict", status)] == (
            expected
        ), status
    assert contract.rejected("other", 404) - counted_before[("other", 404)] == 1


def _schema(document: dict, name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


# -- no 5xx from any input --------------------------------------------------------------------


HUGE = str(10**400)


@pytest.mark.parametrize(
    ("label_json", "words"),
    [
        ("1e308", "finite number within"),
        (HUGE, "finite number within"),
        ("NaN", "finite number"),
        ("Infinity", "finite number"),
        ('"150"', "must be a number"),
    ],
)
def test_hostile_regression_labels_are_422_and_nothing_is_stored(contract, label_json, words):
    pid = _predict_one(contract, 4)
    body = f'{{"prediction_id": "{pid}", "ground_truth": {label_json}}}'
    response = contract.post("/feedback", content=body, headers=_JSON)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "ground_truth" and words in error["problem"]
    batch = f'{{"feedback": [{body}]}}'
    response = contract.post("/feedback/batch", content=batch, headers=_JSON)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "feedback.0.ground_truth"
    assert pid not in set(contract.store.labelled("diabetes").prediction_id)


def test_a_label_at_the_limit_is_stored_and_counted_without_overflow(contract: Contract):
    pid = _predict_one(contract, 5)
    label = str(2**511)  # an exact integer of 154 digits: no JSON encoder takes it as an int
    body = f'{{"prediction_id": "{pid}", "ground_truth": {label}}}'
    response = contract.post("/feedback", content=body, headers=_JSON)
    assert response.status_code == 201, response.text
    retry = contract.post("/feedback", content=body, headers=_JSON)
    assert retry.status_code == 200  # the same label again: stored already, not a conflict
    stored = contract.store.labelled("diabetes").set_index("prediction_id").ground_truth[pid]
    assert stored == float(2**511)
    assert "mlserve_labelled_squared_error_total" in httpx.get(f"{contract.url}/metrics").text


@pytest.mark.parametrize(
    ("value", "words"),
    [(HUGE, "out of range"), (str(-(2**1023) - 1), "out of range"), ('"old"', "expected a number")],
)
def test_hostile_feature_values_are_422_naming_the_field(contract, value, words):
    before = contract.store.count_predictions()
    fields = ", ".join(
        f"{json.dumps(k)}: {value if k == 'bmi' else json.dumps(v)}" for k, v in _record().items()
    )
    response = contract.post("/predict", content=f'{{"records": [{{{fields}}}]}}', headers=_JSON)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["record"], error["field"]) == (0, "bmi") and words in error["problem"]
    assert contract.store.count_predictions() == before


def test_unknown_keys_are_refused_at_every_level(contract: Contract):
    pid = _predict_one(contract, 6)
    cases = [
        ("/predict", {"records": [_record()], "extra": 1}, "extra"),
        ("/predict", {"records": [{**_record(), "extra": 1}]}, "extra"),
        ("/feedback", {"prediction_id": pid, "ground_truth": 1.0, "extra": 1}, "extra"),
        (
            "/feedback/batch",
            {"feedback": [{"prediction_id": pid, "ground_truth": 1.0, "extra": 1}]},
            "feedback.0.extra",
        ),
    ]
    for path, body, field in cases:
        response = contract.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert pid not in set(contract.store.labelled("diabetes").prediction_id)


# -- answered only after the commit, and the deadline -------------------------------------------


def test_an_answer_waits_for_its_commit_and_a_late_one_is_504(contract: Contract):
    lock = sqlite3.connect(contract.db, isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # the log's commit now waits for this lock
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(contract.post("/predict", json={"records": [_record(7)]}))
        )
        sender.start()
        sender.join(1.0)
        assert answers == []  # no answer while its rows cannot be committed
        lock.execute("COMMIT")
        sender.join(30)
        [answer] = answers
        assert answer.status_code == 200
        pid = answer.json()["predictions"][0]["prediction_id"]
        assert contract.store.prediction(pid) is not None

        lock.execute("BEGIN EXCLUSIVE")
        late = contract.post("/predict", json={"records": [_record(8)]})  # deadline: 2 s
        assert late.status_code == 504
        assert "retry later" in late.json()["errors"][0]["problem"]
    finally:
        lock.close()


# -- the document tells the truth ----------------------------------------------------------------


def test_the_document_is_the_served_models_signature_and_data(contract: Contract, tmp_path):
    document = contract.document()
    champion = contract.client.get_model_version_by_alias("diabetes", "champion")
    assert document["info"]["title"] == f"mlserve: diabetes v{champion.version}"
    folder = download_version(contract.client, "diabetes", champion.version, tmp_path)
    signature = Model.load(str(folder)).signature
    record = document["components"]["schemas"]["Record"]
    assert list(record["properties"]) == [c.name for c in signature.inputs.inputs]
    assert {p["type"] for p in record["properties"].values()} == {"number"}
    assert record["required"] == list(DIABETES.columns)
    assert record["additionalProperties"] is False
    [example] = record["examples"]
    rows = DIABETES.to_dict("records")
    assert example in rows  # a row of the training data, not made up
    answer = contract.post("/predict", json={"records": [example]})
    assert answer.status_code == 200
    jsonschema.validate(answer.json(), _schema(document, "Predictions"))
    label = document["components"]["schemas"]["Feedback"]["properties"]["ground_truth"]
    assert label["type"] == "number"
    feedback = document["paths"]["/feedback"]["post"]
    assert set(feedback["responses"]) >= {"200", "201", "401", "403", "404", "409", "422", "503"}
    assert feedback["security"] == [{"apiKey": []}]
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    model = httpx.get(f"{contract.url}/model", headers=bearer(NEW), timeout=30)
    jsonschema.validate(model.json(), _schema(document, "ModelInfo"))


def test_the_docs_page_shows_this_document_offline(contract: Contract):
    page = httpx.get(f"{contract.url}/docs", timeout=30).text
    assert "<title>mlserve: diabetes v" in page and "/openapi.json" in page
    assert "/static_content/swagger-ui-bundle.js" in page  # served here, no CDN
    assert httpx.get(f"{contract.url}/static_content/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(f"{contract.url}/").text == page  # BentoML's index shows it too
    assert httpx.get(f"{contract.url}/docs.json").json() == contract.document()


def test_a_fuzzer_finds_no_5xx_and_no_answer_outside_the_document(contract: Contract, tmp_path):
    result = fuzz(contract.url, NEW, tmp_path, exclude=["/admin/reload"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", result.stdout), result.stdout[-2000:]
