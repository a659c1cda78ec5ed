"""Every route of the service, in-process (``ModelService.to_asgi()``), against its own document.

No process is started: the service reads a real SQLite registry and prediction store in a
temporary folder. Expected predictions come from the fitted estimator itself, and every answer is
validated against the OpenAPI document the service serves, so an answer and its documented model
cannot drift apart. The guarantees that need a real process (durability of the log, hot swap under
load, signals) stay in the integration tier.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from harness.inprocess import ADMIN_KEY, FEEDBACK_KEY, PREDICT_KEY, bearer
from harness.registries import promote_new_version
from serving.http.app import SCOPE
from serving.http.auth import key_id
from serving.service import app
from serving.store.ids import new_prediction_id
from serving.store.tables import feedback
from tests.unit.conftest import ROWS, fitted


def test_predict_answers_what_the_estimator_predicts_in_the_documented_shape(served):
    records = ROWS.iloc[:3].to_dict("records")
    answer = served.client.post("/predict", json={"records": records}, headers=bearer(PREDICT_KEY))
    assert answer.status_code == 200
    served.conforms(answer.json(), "Predictions")
    predictions = answer.json()["predictions"]
    assert [p["prediction"] for p in predictions] == served.estimator.predict(
        ROWS.iloc[:3]
    ).tolist()
    expected = served.estimator.predict_proba(ROWS.iloc[:3])
    for p, row in zip(predictions, expected, strict=True):
        assert p["probabilities"] == pytest.approx({"0": row[0], "1": row[1]})
        assert (p["model_name"], p["model_version"]) == ("bc", "1")


def test_predict_refuses_a_bad_record_naming_record_and_field(served):
    records = [ROWS.iloc[0].to_dict(), {**ROWS.iloc[1].to_dict(), "mean radius": "big"}]
    answer = served.client.post("/predict", json={"records": records}, headers=bearer(PREDICT_KEY))
    assert answer.status_code == 422
    served.conforms(answer.json(), "Errors")
    [error] = answer.json()["errors"]
    assert (error["record"], error["field"]) == (1, "mean radius")


def test_feedback_stores_once_then_answers_the_retry_and_refuses_another_label(served):
    pid = served.logged()
    headers = bearer(FEEDBACK_KEY)
    first = served.client.post(
        "/feedback", json={"prediction_id": pid, "ground_truth": 1}, headers=headers
    )
    assert (first.status_code, first.json()) == (201, {"prediction_id": pid, "status": "stored"})
    served.conforms(first.json(), "FeedbackStored")
    retry = served.client.post(
        "/feedback", json={"prediction_id": pid, "ground_truth": 1}, headers=headers
    )
    assert (retry.status_code, retry.json()["status"]) == (200, "already stored")
    other = served.client.post(
        "/feedback", json={"prediction_id": pid, "ground_truth": 0}, headers=headers
    )
    assert other.status_code == 409
    served.conforms(other.json(), "Errors")
    unknown = served.client.post(
        "/feedback", json={"prediction_id": new_prediction_id(), "ground_truth": 0}, headers=headers
    )
    assert unknown.status_code == 404


def test_feedback_batch_reports_each_item(served):
    stored, unknown = served.logged(), new_prediction_id()
    body = {"feedback": [{"prediction_id": p, "ground_truth": 0} for p in (stored, unknown)]}
    answer = served.client.post("/feedback/batch", json=body, headers=bearer(FEEDBACK_KEY))
    assert answer.status_code == 200
    served.conforms(answer.json(), "FeedbackResults")
    assert [r["status"] for r in answer.json()["results"]] == [201, 404]


def test_model_describes_the_served_version(served):
    answer = served.client.get("/model", headers=bearer(PREDICT_KEY))
    assert answer.status_code == 200
    served.conforms(answer.json(), "ModelInfo")
    info = answer.json()
    assert (info["name"], info["version"], info["task"]) == ("bc", "1", "classification")
    assert [f["name"] for f in info["features"]] == list(ROWS.columns)


def test_reload_follows_a_new_champion(served):
    unchanged = served.client.post("/admin/reload", headers=bearer(ADMIN_KEY))
    assert (unchanged.status_code, unchanged.json()["changed"]) == (200, False)
    served.conforms(unchanged.json(), "Reloaded")
    newer = fitted(0.01)
    version = promote_new_version(served.registry, served.log, "bc", newer, ROWS)
    moved = served.reload()  # the poll thread may have swapped first: then "changed" is False
    assert (moved["version"], moved["refused"]) == (version, None)
    answer = served.client.post(
        "/predict", json={"records": ROWS.iloc[:5].to_dict("records")}, headers=bearer(PREDICT_KEY)
    )
    assert [p["model_version"] for p in answer.json()["predictions"]] == [version] * 5
    expected = newer.predict_proba(ROWS.iloc[:5])[:, 1]
    got = [p["probabilities"]["1"] for p in answer.json()["predictions"]]
    assert got == pytest.approx(expected.tolist())


def test_each_route_needs_its_scope(served):
    routes = {
        ("post", "/predict"): (PREDICT_KEY, {"records": [ROWS.iloc[0].to_dict()]}),
        ("post", "/feedback"): (FEEDBACK_KEY, {"prediction_id": "0" * 32, "ground_truth": 1}),
        ("post", "/feedback/batch"): (FEEDBACK_KEY, {"feedback": []}),
        ("get", "/model"): (PREDICT_KEY, None),
        ("post", "/admin/reload"): (ADMIN_KEY, None),
    }
    for (method, path), (right, body) in routes.items():
        kwargs = {} if body is None else {"json": body}
        anonymous = served.client.request(method, path, **kwargs)
        assert anonymous.status_code == 401, path
        wrong = next(k for k in (PREDICT_KEY, FEEDBACK_KEY, ADMIN_KEY) if k != right)
        refused = served.client.request(method, path, headers=bearer(wrong), **kwargs)
        assert refused.status_code == 403, path
        served.conforms(refused.json(), "Errors")


def test_the_document_lists_every_route_with_its_scope_answers_and_failures(served):
    document = served.document()
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    assert {r.path for r in routes} == set(document["paths"])
    for route in routes:
        # A route declared without serving.http.app.route has no scope: red here.
        assert SCOPE in (route.openapi_extra or {}), f"{route.path} was declared without route()"
        [method] = route.methods
        operation = document["paths"][route.path][method.lower()]
        assert operation["summary"], route.path
        assert operation["security"] == [{"apiKey": []}], route.path
        statuses = set(operation["responses"])
        assert {str(route.status_code), "401", "403", "500", "504"} <= statuses, route.path
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, route.path
        success = operation["responses"][str(route.status_code)]["content"]["application/json"]
        assert success["schema"]["$ref"].startswith("#/components/schemas/"), route.path
    record = document["components"]["schemas"]["Record"]
    assert list(record["properties"]) == list(ROWS.columns)
    label = document["components"]["schemas"]["Feedback"]["properties"]["ground_truth"]
    assert label == {"enum": [0, 1]}


def test_feedback_records_the_key_that_sent_it(served):
    pid = served.logged()
    body = {"prediction_id": pid, "ground_truth": 1}
    answer = served.client.post("/feedback", json=body, headers=bearer(FEEDBACK_KEY))
    assert answer.status_code == 201
    query = sa.select(feedback.c.key_id).where(feedback.c.prediction_id == pid)
    with served.log.store.engine.connect() as conn:
        assert conn.execute(query).scalar_one() == key_id(FEEDBACK_KEY)


def test_a_key_past_its_labels_a_minute_is_answered_429_with_retry_after(served):
    # Last in the module: it spends the feedback key's minute.
    items = [{"prediction_id": f"{i:032x}", "ground_truth": 1} for i in range(1000)]
    first = served.client.post(
        "/feedback/batch", json={"feedback": items}, headers=bearer(FEEDBACK_KEY)
    )
    assert first.status_code == 200  # every item answered (unknown ids: 404 each)
    second = served.client.post(
        "/feedback/batch", json={"feedback": items}, headers=bearer(FEEDBACK_KEY)
    )
    assert second.status_code == 429
    served.conforms(second.json(), "Errors")
    assert 1 <= int(second.headers["Retry-After"]) <= 60
