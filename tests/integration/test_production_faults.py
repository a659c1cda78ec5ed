"""Artifact store faults on the production services: training fails clearly, serving carries on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from mlflow import MlflowClient

from harness.project import EXAMPLES, service_env, train
from harness.servers import (
    S3Server,
    bentoml_server,
    mlflow_server,
    postgres_cluster,
    s3_server,
    stop_group,
)
from mlserve_assets.settings import Settings


@dataclass
class Stack:
    settings: Settings
    s3: S3Server
    client: MlflowClient


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    with postgres_cluster() as pg, s3_server(tmp_path / "s3.log", "mlflow") as s3:
        backend = pg.create_database("mlflow")
        with mlflow_server(backend, s3.url, "mlflow", tmp_path / "mlflow.log") as tracking:
            settings = Settings(
                home=tmp_path / "home",
                mlflow_tracking_uri=tracking,
                artifact_location=None,
                spec_paths=EXAMPLES,
                predictions_url=pg.create_database("predictions"),
                bentoml_home=tmp_path / "bentoml",
            )
            assert train(settings, EXAMPLES, "train_churn").success
            yield Stack(settings, s3, MlflowClient(tracking, tracking))


def test_with_s3_unreachable_serving_carries_on_and_training_fails_moving_no_alias(
    stack: Stack, tmp_path, monkeypatch
):
    """Both faults in one stack: its three servers and first training cost about 40 s."""
    env = service_env(
        stack.settings, "churn", stack.settings.predictions_url, tmp_path / "spool.db"
    )
    record = {
        "tenure_months": 3,
        "monthly_charges": 99.5,
        "support_calls": 4,
        "monthly_contract": 1,
    }
    before = stack.client.get_model_version_by_alias("churn", "champion")
    with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
        assert httpx.post(f"{url}/predict", json={"records": [record]}, timeout=30).is_success
        stop_group(stack.s3.process)
        time.sleep(2.5)  # two registry polls while S3 is away
        answers = [
            httpx.post(f"{url}/predict", json={"records": [record]}, timeout=30) for _ in range(20)
        ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.is_error]
    assert {a.json()["predictions"][0]["model_version"] for a in answers} == {"1"}

    # MLflow retries a failing upload with exponential backoff for minutes by default.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    result = train(stack.settings, EXAMPLES, "train_churn")

    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["churn__candidates"]
    message = failures[0].event_specific_data.error.to_string()
    assert "Could not connect to the endpoint URL" in message or "Connection" in message
    after = stack.client.get_model_version_by_alias("churn", "champion")
    assert after.version == before.version
    assert [v.version for v in stack.client.search_model_versions("name='churn'")] == [
        before.version
    ]
