"""The closed loop with real processes: Dagster daemon + sensor, `bentoml serve`, HTTP traffic.

Nothing but predictions and labels is sent; the daemon's sensor must start the retraining, the
gate must decide, and the service must pick the new champion up by itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from harness.servers import (
    bentoml_server,
    dagster_daemon,
    mlflow_server,
    postgres_cluster,
    s3_client,
    s3_server,
)
from mlserve_assets.settings import PROJECT_ROOT, Settings
from mlserve_assets.simulation import FEATURES, SHIFT_DEGREES, concept_rows
from tests.conftest import service_env, train, write_spec

LOOP_TIMEOUT = 300


@dataclass
class Loop:
    url: str
    client: MlflowClient
    http: httpx.Client
    backend: dict[str, str | None]

    def predict(self, rows) -> list[dict]:
        response = self.http.post(
            f"{self.url}/predict", json={"records": rows[FEATURES].to_dict("records")}
        )
        response.raise_for_status()
        return response.json()["predictions"]

    def label(self, answers: list[dict], labels) -> None:
        items = [
            {"prediction_id": a["prediction_id"], "ground_truth": int(g)}
            for a, g in zip(answers, labels, strict=True)
        ]
        results = self.http.post(f"{self.url}/feedback/batch", json={"feedback": items}).json()
        assert {r["status"] for r in results["results"]} == {201}

    def champion(self) -> str:
        return str(self.client.get_model_version_by_alias("drift", "champion").version)


@contextmanager
def _backends(kind: str, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """Embedded: SQLite and files. Production: PostgreSQL for Dagster, MLflow and the prediction
    log, an MLflow tracking server, and artifacts on an S3-compatible server."""
    if kind == "embedded":
        yield {
            "tracking": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifacts": (tmp_path / "artifacts").as_uri(),
            "predictions": f"sqlite:///{tmp_path / 'predictions.db'}",
            "dagster_home": str(PROJECT_ROOT),
        }
        return
    with postgres_cluster() as pg, s3_server(tmp_path / "s3.log", "mlflow") as s3:
        dagster_db, mlflow_db, predictions_db = (
            pg.create_database(name) for name in ("dagster", "mlflow", "predictions")
        )
        with mlflow_server(mlflow_db, s3.url, "mlflow", tmp_path / "mlflow.log") as tracking:
            yield {
                "tracking": tracking,
                "artifacts": None,
                "predictions": predictions_db,
                "dagster_home": str(PROJECT_ROOT / "infra/dagster"),
                "dagster_postgres": dagster_db,
                "s3": s3.url,
            }


@pytest.fixture(params=["embedded", "production"])
def loop(request, tmp_path) -> Iterator[Loop]:
    spec = write_spec(
        tmp_path / "drift.yaml",
        [
            {
                "name": "drift",
                "source": {
                    "kind": "file",
                    "path": str(PROJECT_ROOT / "examples/data/drift_base.csv"),
                },
                "target": "label",
                "task": "classification",
                "candidates": [
                    {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"}
                ],
                "metric": "accuracy",
                "gate": {"threshold": 0.75, "min_improvement": 0.02},
                "retrain": {
                    "min_feedback_rows": 200,
                    "check_every_seconds": 2,
                    "data": {"policy": "feedback_only", "holdout_fraction": 0.3},
                },
            }
        ],
    )
    with _backends(request.param, tmp_path) as backend:
        settings = Settings(
            home=tmp_path / "home",
            mlflow_tracking_uri=backend["tracking"],
            artifact_location=backend["artifacts"],
            spec_paths=[spec],
            predictions_url=backend["predictions"],
            bentoml_home=tmp_path / "bentoml",
        )
        assert train(settings, [spec], "train_drift").success
        env = {
            **service_env(settings, "drift", settings.predictions_url, tmp_path / "spool.db"),
            "MLSERVE_SPECS": str(spec),
            "DAGSTER_HOME": backend["dagster_home"],
            "MLSERVE_DAGSTER_STORAGE": str(tmp_path / "dagster"),
        }
        if settings.artifact_location:
            env["MLSERVE_ARTIFACT_ROOT"] = settings.artifact_location
        if "dagster_postgres" in backend:
            env["DAGSTER_POSTGRES_URL"] = backend["dagster_postgres"]
        with (
            dagster_daemon(env, tmp_path / "daemon.log"),
            bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url,
            httpx.Client(timeout=30) as http,
        ):
            uri = settings.mlflow_tracking_uri
            yield Loop(url, MlflowClient(uri, uri), http, backend)


def _shifted(n: int, seed: int):
    return concept_rows(n, SHIFT_DEGREES, seed)


def test_feedback_retrains_promotes_and_the_service_switches(loop: Loop, record_property):
    assert loop.champion() == "1"
    probe = _shifted(300, seed=99)
    before = np.mean([a["prediction"] for a in loop.predict(probe)] == probe["label"].to_numpy())

    for seed in range(3):
        rows = _shifted(100, seed)
        loop.label(loop.predict(rows), rows["label"])
    crossed = time.monotonic()  # 300 labels >= min_feedback_rows (200): no further action

    deadline = crossed + LOOP_TIMEOUT
    while True:
        answers = loop.predict(probe)
        if answers[0]["model_version"] != "1":
            break
        assert time.monotonic() < deadline, "the loop did not close: still serving v1"
        time.sleep(0.5)
    elapsed = time.monotonic() - crossed
    record_property("seconds_from_threshold_to_new_version", round(elapsed, 1))

    after = np.mean([a["prediction"] for a in answers] == probe["label"].to_numpy())
    new = answers[0]["model_version"]
    assert loop.champion() == new
    version = loop.client.get_model_version("drift", new)
    assert version.tags["mlserve.gate"] == "passed"
    assert int(version.tags["mlserve.feedback_rows"]) > 0
    record_property("live_accuracy_before_after", f"{before:.3f} -> {after:.3f}")
    assert after > before + 0.1, (before, after)
    assert loop.http.get(f"{loop.url}/model").json()["version"] == new
    assert elapsed < LOOP_TIMEOUT
    if "s3" in loop.backend:  # production: prove the run and the artifacts used those services
        # The champion moves before the run's last step (the bento) ends: wait for the run.
        engine = sa.create_engine(loop.backend["dagster_postgres"])
        while True:
            with engine.connect() as conn:
                statuses = conn.execute(sa.text("select status from runs")).scalars().all()
            assert "FAILURE" not in statuses
            if "SUCCESS" in statuses:
                break
            assert time.monotonic() < deadline, f"no retraining run succeeded: {statuses}"
            time.sleep(0.5)
        engine.dispose()
        objects = s3_client(loop.backend["s3"]).list_objects_v2(Bucket="mlflow")
        assert any(o["Key"].endswith("model.skops") for o in objects.get("Contents", []))


def test_noisy_labels_retrain_but_the_gate_holds(loop: Loop):
    rng = np.random.default_rng(5)
    for seed in range(3):
        rows = _shifted(100, seed)
        loop.label(loop.predict(rows), rng.integers(0, 2, len(rows)))

    deadline = time.monotonic() + LOOP_TIMEOUT
    while True:
        versions = loop.client.search_model_versions("name='drift'")
        decided = [v for v in versions if str(v.version) != "1" and "mlserve.gate" in v.tags]
        if decided:
            break
        assert time.monotonic() < deadline, "no retraining run finished"
        time.sleep(1)

    [challenger] = decided
    assert challenger.tags["mlserve.gate"] == "held"
    assert loop.champion() == "1"
    time.sleep(2)  # two poll intervals: a wrong swap would show by now
    assert {a["model_version"] for a in loop.predict(_shifted(20, seed=7))} == {"1"}
