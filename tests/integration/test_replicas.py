"""Three serving replicas behind haproxy, sharing a PostgreSQL log and one registry.

They must agree on the version after a promotion (within a bound, not a poll interval), take
feedback for a prediction another replica answered, and lose no answered prediction, nor log a
request twice, when one is killed with SIGKILL under load. Real processes throughout: `bentoml
serve` replicas, haproxy with the production stack's configuration, a throw-away PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
import sqlalchemy as sa
from sklearn.datasets import load_breast_cancer

from harness.logged import logged_rows
from harness.project import AUTH, service_env
from harness.registries import champion_copy, move, registry_copy
from harness.replicas import Replicas, replicas
from harness.traffic import Traffic
from serving.store.predictions import PredictionStore
from serving.store.tables import feedback, prediction_batches

MODEL = "breast_cancer"
RECORDS = load_breast_cancer(as_frame=True).frame.drop(columns="target").to_dict("records")
SKEW_BOUND = 3.0
"""Seconds from a recorded move until every replica answers with the new version.

The replicas poll the registry only every 60 s here: only the move's announcement can meet it.
"""


@pytest.fixture(scope="module")
def stack(trained, postgres, tmp_path_factory) -> Iterator[tuple[Replicas, str, str]]:
    folder = tmp_path_factory.mktemp("replicas")
    uri = registry_copy(trained, folder)
    db_url = postgres.create_database("replicas")
    env = service_env(replace(trained, mlflow_tracking_uri=uri), MODEL, db_url, folder / "spool.db")
    env["MLSERVE_POLL_SECONDS"] = "60"
    with replicas(env, folder) as running:
        yield running, uri, db_url


def _version(url: str) -> str:
    return httpx.get(f"{url}/model", headers=AUTH, timeout=10).json()["version"]


def test_every_replica_serves_a_promotion_within_the_bound(stack, record_property):
    running, uri, db_url = stack
    current, copy = champion_copy(uri, MODEL)
    assert {_version(url) for url in running.urls} == {str(current.version)}

    def swapped_after(url: str, start: float) -> float:
        while _version(url) != str(copy.version):
            assert time.monotonic() - start < 30, f"{url} still serves v{current.version}"
            time.sleep(0.02)
        return time.monotonic() - start

    start = time.monotonic()
    move(uri, db_url, MODEL, str(copy.version))
    with ThreadPoolExecutor(len(running.urls)) as pool:
        lags = list(pool.map(lambda url: swapped_after(url, start), running.urls))
    record_property("seconds_to_new_version_per_replica", [round(lag, 2) for lag in lags])
    assert max(lags) < SKEW_BOUND
    answers = httpx.post(
        f"{running.balancer}/predict", json={"records": RECORDS[:30]}, timeout=30
    ).json()["predictions"]
    assert {a["model_version"] for a in answers} == {str(copy.version)}


def test_feedback_through_any_replica_for_a_prediction_another_answered(stack):
    running, _, db_url = stack
    sent = {}
    for i, url in enumerate(running.urls):
        answer = httpx.post(f"{url}/predict", json={"records": [RECORDS[i]]}, timeout=30)
        prediction_id = answer.json()["predictions"][0]["prediction_id"]
        other = running.urls[(i + 1) % len(running.urls)]
        label = httpx.post(
            f"{other}/feedback",
            json={"prediction_id": prediction_id, "ground_truth": 1},
            headers=AUTH,
            timeout=30,
        )
        assert label.status_code == 201, label.text
        sent[prediction_id] = 1
    store = PredictionStore(db_url)
    with store.engine.connect() as conn:
        query = sa.select(feedback.c.prediction_id).where(feedback.c.prediction_id.in_(list(sent)))
        stored = set(conn.execute(query).scalars())
    store.dispose()
    assert stored == set(sent)


MARKED = "mean radius"


def _mark(features: dict) -> int:
    return round((features[MARKED] - 10.0) / 1e-4)


def _marked(number: int) -> dict:
    """Request ``number``'s record, marked: its mean radius is 10 + number / 10^4.

    A request logged twice then shows as a mark logged twice, whatever its prediction ids.
    """
    return RECORDS[number % len(RECORDS)] | {MARKED: 10.0 + number * 1e-4}


def test_a_replica_killed_under_load_loses_no_answered_prediction_and_logs_none_twice(
    stack, record_property
):
    running, _, db_url = stack
    started = time.time()
    with Traffic(running.balancer, _marked, threads=4) as load:
        load.wait_for(300, timeout=60)
        running.kill(0)
        killed_at = load.count()
        with pytest.raises(httpx.ConnectError):  # nothing of it answers any more
            httpx.get(f"{running.urls[0]}/readyz", timeout=5)
        load.wait_for(300, timeout=60)
    answered = {a["prediction_id"]: n for a, n in zip(load.answers, load.numbers, strict=True)}
    assert len(answered) >= killed_at + 300, "the other replicas kept answering"
    batches = prediction_batches.c
    rows = logged_rows(db_url, batches.model_name == MODEL, batches.created_at >= started)
    logged = {row.prediction_id: _mark(row.features) for row in rows}
    missing = set(answered) - set(logged)
    assert not missing, f"{len(missing)} answered predictions are not in the log"
    assert all(logged[p] == mark for p, mark in answered.items()), "an answer's row is another's"
    marks = list(logged.values())
    assert len(marks) == len(set(marks)), "a request was logged twice"
    record_property(
        "kill",
        f"{len(answered)} answered ({killed_at} before the kill), {len(load.failures)} "
        f"refused around it, {len(logged) - len(answered)} logged but never answered",
    )
