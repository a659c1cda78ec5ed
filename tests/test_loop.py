"""The closed loop with real processes: Dagster daemon + sensor, a served model, HTTP traffic.

Nothing but predictions and labels is sent; the daemon's sensor must start the retraining, the
gate must decide, and the service must pick the new champion up by itself. The model is declared
with the spec's default retraining settings: the data mix is chosen by the held-out labels, so the
loop has to recover from shifts it was not tuned for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
    free_port,
    managed_process,
    mlflow_server,
    postgres_cluster,
    s3_client,
    s3_server,
)
from mlserve_assets.champion_moves import history
from mlserve_assets.settings import PROJECT_ROOT, Settings
from mlserve_assets.simulation import FEATURES, SCENARIOS, concept_rows, post_shift_model
from serving.contract import Tag, feedback_watermark, gate_outcome
from serving.prediction_store import PredictionStore
from tests.conftest import AUTH, service_env, train, write_spec

LOOP_TIMEOUT = 300
BATCH = 50
LABELS = 300  # the budget: the loop must have recovered within this many labels
MIN_FEEDBACK_ROWS = 150  # the spec's default


def drift_spec(path: Path, **retrain: object) -> Path:
    """The drift model as a user would declare it: two candidates, defaults for retraining."""
    return write_spec(
        path,
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
                    {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"},
                    {
                        "name": "forest",
                        "estimator": "sklearn.ensemble.RandomForestClassifier",
                        "params": {"n_estimators": 50, "random_state": 0},
                    },
                ],
                "metric": "accuracy",
                "gate": {"threshold": 0.75},
                **({"retrain": retrain} if retrain else {}),
            }
        ],
    )


@dataclass
class Loop:
    url: str
    client: MlflowClient
    http: httpx.Client
    store: PredictionStore
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

    def versions(self) -> list:
        return sorted(
            self.client.search_model_versions("name='drift'"), key=lambda v: int(v.version)
        )

    def summary(self) -> str:
        """What a failure message needs: each version's gate outcome and labels used, labels in."""
        total = self.store.labelled_since("drift", 0.0)[0]
        versions = [
            f"v{v.version} {gate_outcome(v)} trained on "
            f"{total - self.store.labelled_since('drift', feedback_watermark(v))[0]} labels"
            for v in self.versions()
        ]
        return f"{'; '.join(versions)}; {total} labels stored"

    def settled(self) -> bool:
        """Every version decided, the alias moved to the newest passed one, and too few labels
        since the last training for another run.

        The gate tags a version passed just before it moves the alias: a loop judged settled in
        between saw the old champion as the one to follow (CI caught it).
        """
        versions = self.versions()
        if any(gate_outcome(v) == "pending" for v in versions):
            return False
        passed = [v.version for v in versions if gate_outcome(v) == "passed"]
        if passed and str(max(passed, key=int)) != self.champion():
            return False
        used = max(feedback_watermark(v) for v in versions)
        return self.store.labelled_since("drift", used)[0] < MIN_FEEDBACK_ROWS

    def stream(self, scenario: str, labels: int, noise: float = 0.0, seed: int = 0) -> float:
        """Rounds of shifted traffic, each labelled one round late; returns when the threshold
        of labels was crossed (``time.monotonic``)."""
        rng = np.random.default_rng(5)
        shift = SCENARIOS[scenario]
        pending, sent, crossed = None, 0, 0.0
        for number in range(labels // BATCH + 1):
            rows = concept_rows(BATCH, shift.weights(number), seed=seed + number)
            answers = self.predict(rows)
            if pending is not None:
                self.label(*pending)
                sent += BATCH
                if sent >= MIN_FEEDBACK_ROWS and not crossed:
                    crossed = time.monotonic()
            truth = rows["label"].to_numpy()
            flips = rng.uniform(size=len(truth)) < noise
            pending = (answers, np.where(flips, 1 - truth, truth))
            time.sleep(1)
        return crossed

    def wait(self, until, what: str) -> None:
        deadline = time.monotonic() + LOOP_TIMEOUT
        while not until():
            assert time.monotonic() < deadline, f"{what}: {self.summary()}"
            time.sleep(1)


@contextmanager
def _backends(kind: str, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """Embedded: SQLite and files. Production: PostgreSQL for Dagster, MLflow and the prediction
    log, an MLflow tracking server, and artifacts on an S3-compatible server."""
    if kind == "embedded":  # the defaults under MLSERVE_HOME
        home = tmp_path / "home"
        yield {
            "tracking": f"sqlite:///{home / 'mlflow.db'}",
            "artifacts": (home / "artifacts").as_uri(),
            "predictions": f"sqlite:///{home / 'predictions.db'}",
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


@contextmanager
def closed_loop(
    tmp_path: Path, backend: str = "embedded", serve: str = "service", **retrain: object
) -> Iterator[Loop]:
    """The drift model trained, served (`bentoml serve` of the service, or `mlserve serve` of its
    bento), and the Dagster daemon running its sensor."""
    spec = drift_spec(tmp_path / "drift.yaml", **retrain)
    with ExitStack() as stack:
        backends = stack.enter_context(_backends(backend, tmp_path))
        settings = Settings(
            home=tmp_path / "home",
            mlflow_tracking_uri=backends["tracking"],
            artifact_location=backends["artifacts"],
            spec_paths=[spec],
            predictions_url=backends["predictions"],
            bentoml_home=tmp_path / "home" / "bentoml",
        )
        assert train(settings, [spec], "train_drift").success
        env = {
            **service_env(settings, "drift", settings.predictions_url, tmp_path / "spool.db"),
            "MLSERVE_SPECS": str(spec),
            "DAGSTER_HOME": backends["dagster_home"],
            "MLSERVE_DAGSTER_STORAGE": str(tmp_path / "dagster"),
        }
        if settings.artifact_location:
            env["MLSERVE_ARTIFACT_ROOT"] = settings.artifact_location
        if "dagster_postgres" in backends:
            env["DAGSTER_POSTGRES_URL"] = backends["dagster_postgres"]
        stack.enter_context(dagster_daemon(env, tmp_path / "daemon.log"))
        if serve == "bento":
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            mlserve = str(Path(sys.executable).parent / "mlserve")
            cmd = [mlserve, "serve", "drift", "--port", str(port)]
            # Only the home, as a user has it: `mlserve serve` hands the bento the project's
            # locations itself, and the bento must log and poll there, not in its own copy.
            # Nor keys: `mlserve serve` makes the embedded default's local key, read below.
            located = (
                "MLSERVE_MODEL",
                "MLSERVE_PREDICTIONS_URL",
                "MLFLOW_TRACKING_URI",
                "MLSERVE_ARTIFACT_ROOT",
                "BENTOML_HOME",
                "MLSERVE_API_KEYS",
            )
            bento_env = {k: v for k, v in env.items() if k not in located}
            stack.enter_context(
                managed_process(cmd, bento_env, tmp_path / "serve.log", f"{url}/readyz")
            )
        else:
            url = stack.enter_context(
                bentoml_server("serving.service:ModelService", env, tmp_path / "server.log")
            )
        auth = AUTH
        if serve == "bento":
            assert httpx.post(f"{url}/feedback", json={}, timeout=30).status_code == 401
            auth = {"Authorization": f"Bearer {(settings.home / 'api-key').read_text().strip()}"}
        http = stack.enter_context(httpx.Client(timeout=30, headers=auth))
        store = PredictionStore(settings.predictions_url)
        stack.callback(store.dispose)
        uri = settings.mlflow_tracking_uri
        yield Loop(url, MlflowClient(uri, uri), http, store, backends)


def _accuracy(loop: Loop, rows) -> tuple[float, str]:
    answers = loop.predict(rows)
    right = np.mean([a["prediction"] for a in answers] == rows["label"].to_numpy())
    return float(right), answers[0]["model_version"]


@pytest.mark.parametrize("scenario", ["features", "gradual"])
def test_default_settings_recover_from_a_shift_within_the_label_budget(
    scenario, tmp_path, record_property
):
    probe = concept_rows(1000, SCENARIOS[scenario].final(), seed=99)
    oracle = float(
        np.mean(post_shift_model(SCENARIOS[scenario]).predict(probe[FEATURES]) == probe["label"])
    )
    with closed_loop(tmp_path) as loop:
        before, _ = _accuracy(loop, probe)
        crossed = loop.stream(scenario, LABELS)
        loop.wait(loop.settled, f"the loop did not settle after {LABELS} labels")
        loop.wait(
            lambda: _accuracy(loop, probe[:5])[1] == loop.champion(),
            "the service did not follow the champion",
        )
        after, version = _accuracy(loop, probe)
        record_property("accuracy_before_after_oracle", f"{before:.3f} {after:.3f} {oracle:.3f}")
        record_property("seconds_threshold_to_settled", round(time.monotonic() - crossed, 1))
        state = loop.summary()
        assert version != "1", f"no retrained version serves: {state}"
        assert loop.store.count_predictions("drift") >= LABELS
        promoted = loop.client.get_model_version("drift", version)
        assert promoted.tags[Tag.GATE] == "passed", state
        assert after >= oracle - 0.03, (scenario, before, after, oracle, state)


def test_random_labels_are_held_and_runs_stay_within_the_cap(tmp_path):
    with closed_loop(tmp_path, max_runs_per_day=2, cooldown_seconds=5) as loop:

        def held() -> int:
            return sum(gate_outcome(v) == "held" for v in loop.versions())

        # A run reads every label there is when it runs: send a batch, wait for its decision.
        for runs in (1, 2):
            loop.stream("rotation", 2 * MIN_FEEDBACK_ROWS, noise=0.5, seed=100 * runs)
            loop.wait(lambda runs=runs: held() >= runs, f"retraining {runs} did not finish")
        loop.stream("rotation", 2 * MIN_FEEDBACK_ROWS, noise=0.5, seed=300)
        time.sleep(15)  # three sensor ticks with 300 unused labels: the cap of 2 must hold
        assert [gate_outcome(v) for v in loop.versions()] == ["passed", "held", "held"]
        assert loop.champion() == "1"
        answers = loop.predict(concept_rows(20, SCENARIOS["rotation"].final(), 7))
        assert {a["model_version"] for a in answers} == {"1"}


@pytest.mark.parametrize(("backend", "serve"), [("production", "service"), ("embedded", "bento")])
def test_a_rotation_retrains_promotes_and_the_service_switches(
    backend, serve, tmp_path, record_property
):
    probe = concept_rows(300, SCENARIOS["rotation"].final(), seed=99)
    with closed_loop(tmp_path, backend, serve) as loop:
        before, _ = _accuracy(loop, probe)
        crossed = loop.stream("rotation", 3 * BATCH + BATCH)
        deadline = crossed + LOOP_TIMEOUT
        while (version := _accuracy(loop, probe[:5])[1]) == "1":
            assert time.monotonic() < deadline, "the loop did not close: still serving v1"
            time.sleep(0.5)
        record_property(
            "seconds_from_threshold_to_new_version", round(time.monotonic() - crossed, 1)
        )
        after, _ = _accuracy(loop, probe)
        assert loop.champion() == version
        assert loop.client.get_model_version("drift", version).tags[Tag.GATE] == "passed"
        # The move is in the champion's history, made by the gate in a sensor-started run.
        moves = history(loop.store, "drift")
        assert [(m.from_version, m.to_version) for m in moves] == [(None, "1"), ("1", version)]
        assert moves[-1].moved_by.endswith("(sensor retrain_drift)"), moves[-1].moved_by
        assert moves[-1].evidence["promoted"] is True
        assert after > before + 0.1, (before, after)
        # Whatever served, its predictions reached the store the sensor reads.
        assert loop.store.count_predictions("drift") >= 4 * BATCH
        if "s3" in loop.backend:  # production: prove the run and the artifacts used those services
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
