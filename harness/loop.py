"""The closed loop with real processes, for the loop tests and the benchmark's loop row.

A model trained, served, and the Dagster daemon running its sensor; nothing but predictions and
labels is sent, so the sensor must start the retraining, the gate must decide, and the service
must pick the new champion up by itself. The model is the drift example's unless a test declares
another (a real table's, say).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient

from harness.project import AUTH, owner_key, service_env, train, write_spec
from harness.registries import tracking_store
from harness.servers import (
    bentoml_server,
    dagster_daemon,
    free_port,
    managed_process,
    mlflow_server,
    postgres_cluster,
    s3_server,
)
from mlserve_assets.cli.simulation import FEATURES, SCENARIOS, concept_rows
from mlserve_assets.settings import PROJECT_ROOT, Settings
from serving.registry import feedback_watermark, gate_outcome
from serving.store.predictions import PredictionStore

LOOP_TIMEOUT = 300
BATCH = 50
MIN_FEEDBACK_ROWS = 150  # the spec's default
MIN_QUIET_ROWS = 30  # the spec's default: fewer once the labels stop


def drift_model(**retrain: object) -> dict:
    """The drift model as a user would declare it: two candidates, defaults for retraining."""
    return {
        "name": "drift",
        "source": {"kind": "file", "path": str(PROJECT_ROOT / "examples/data/drift_base.csv")},
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


def drift_spec(path: Path, **retrain: object) -> Path:
    """The drift model's spec file."""
    return write_spec(path, [drift_model(**retrain)])


class Fed(NamedTuple):
    """What a stream of rounds got: when the labels crossed the threshold, and each answer."""

    crossed: float
    """``time.monotonic`` when the labels sent reached the threshold; 0.0 if they never did."""
    answers: list[list[dict]]
    """The service's answers, round by round."""


@dataclass
class Loop:
    """A running loop's handles: the service's URL, the registry, an HTTP client, the log.

    ``model`` is the served model's name and ``features`` what a request carries.
    """

    url: str
    client: MlflowClient
    http: httpx.Client
    store: PredictionStore
    backend: dict[str, str | None]
    model: str = "drift"
    features: list[str] = field(default_factory=lambda: list(FEATURES))

    def predict(self, rows) -> list[dict]:
        """The service's answers for ``rows`` (a frame holding at least the features)."""
        records = rows[self.features].to_dict("records")
        response = self.http.post(f"{self.url}/predict", json={"records": records})
        response.raise_for_status()
        return response.json()["predictions"]

    def label(self, answers: list[dict], labels) -> None:
        """Send each answer's ground truth in one batch; every label must be accepted as new."""
        items = [
            {"prediction_id": a["prediction_id"], "ground_truth": g}
            for a, g in zip(answers, np.asarray(labels).tolist(), strict=True)
        ]
        results = self.http.post(f"{self.url}/feedback/batch", json={"feedback": items}).json()
        assert {r["status"] for r in results["results"]} == {201}

    def champion(self) -> str:
        """The version the alias names now."""
        return str(self.client.get_model_version_by_alias(self.model, "champion").version)

    def versions(self) -> list:
        """Every registered version, oldest first."""
        return sorted(
            self.client.search_model_versions(f"name='{self.model}'"), key=lambda v: int(v.version)
        )

    def summary(self) -> str:
        """What a failure message needs: each version's gate outcome and labels used, labels in."""
        total = self.store.labelled_since(self.model, 0.0).count
        versions = [
            f"v{v.version} {gate_outcome(v)} trained on "
            f"{total - self.store.labelled_since(self.model, feedback_watermark(v)).count} labels"
            for v in self.versions()
        ]
        return f"{'; '.join(versions)}; {total} labels stored"

    def settled(self) -> bool:
        """Whether the loop is at rest: nothing pending, the alias on the newest pass, no run due.

        At rest: every version decided, the alias moved to the newest passed one, and too few
        labels since the last training for another run, even once they stop (the quiet rule).

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
        return self.store.labelled_since(self.model, used).count < MIN_QUIET_ROWS

    def stream(self, scenario: str, labels: int, noise: float = 0.0, seed: int = 0) -> float:
        """Send rounds of shifted traffic, each labelled one round late.

        Returns when the threshold of labels was crossed (``time.monotonic``).
        """
        rng = np.random.default_rng(5)
        shift = SCENARIOS[scenario]

        def rounds() -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
            for number in range(labels // BATCH + 1):
                rows = concept_rows(BATCH, shift.weights(number), seed=seed + number)
                truth = rows["label"].to_numpy()
                flips = rng.uniform(size=len(truth)) < noise
                yield rows, np.where(flips, 1 - truth, truth)

        return self.feed(rounds()).crossed

    def feed(self, rounds: Iterable[tuple[pd.DataFrame, np.ndarray]], pause: float = 1.0) -> Fed:
        """Send each round's rows ``pause`` seconds apart, labelling each round with the next one.

        Labels arrive one round late, as they do where the truth takes time to be known; the
        last round stays unlabelled.
        """
        pending, sent, crossed = None, 0, 0.0
        answered = []
        for rows, truth in rounds:
            answers = self.predict(rows)
            answered.append(answers)
            if pending is not None:
                self.label(*pending)
                sent += len(pending[0])
                if sent >= MIN_FEEDBACK_ROWS and not crossed:
                    crossed = time.monotonic()
            pending = (answers, truth)
            time.sleep(pause)
        return Fed(crossed, answered)

    def accuracy(self, rows) -> tuple[float, str]:
        """The served model's accuracy on labelled ``rows``, and the version that answered."""
        answers = self.predict(rows)
        right = np.mean([a["prediction"] for a in answers] == rows["label"].to_numpy())
        return float(right), answers[0]["model_version"]

    def first_new_answer(self, probe, crossed: float, old: str = "1") -> tuple[str, float]:
        """Poll until a version other than ``old`` answers: it and the seconds since ``crossed``."""
        deadline = crossed + LOOP_TIMEOUT
        while (version := self.predict(probe[:1])[0]["model_version"]) == old:
            assert time.monotonic() < deadline, f"the loop did not close: {self.summary()}"
            time.sleep(0.5)
        return version, time.monotonic() - crossed

    def wait(self, until, what: str) -> None:
        """Poll ``until`` every second; fail naming ``what`` and the loop's state at the timeout."""
        deadline = time.monotonic() + LOOP_TIMEOUT
        while not until():
            assert time.monotonic() < deadline, f"{what}: {self.summary()}"
            time.sleep(1)


@contextmanager
def _backends(kind: str, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """Stores for one of the two ways to run.

    Embedded: SQLite and files. Production: PostgreSQL for Dagster, MLflow and the prediction
    log, an MLflow tracking server, and artifacts on an S3-compatible server.
    """
    if kind == "embedded":  # the defaults under MLSERVE_HOME
        home = tmp_path / "home"
        yield {
            "tracking": tracking_store(home),
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
                "dagster_home": str(_process_launched(tmp_path / "dagster-home")),
                "dagster_postgres": dagster_db,
                "s3": s3.url,
            }


def _process_launched(home: Path) -> Path:
    """The production instance (infra/dagster/dagster.yaml), its runs launched as processes.

    The stack launches each run in a container through the Docker API; here the daemon runs on
    this machine, so its runs do too (the containers' launcher is tested by the stack's test).
    """
    instance = yaml.safe_load((PROJECT_ROOT / "infra/dagster/dagster.yaml").read_text())
    del instance["run_launcher"]
    # The stack's volume path would be this machine's own /var/lib/mlserve, outliving the test
    # (a stale copy there once hid a watch run that could not load its input).
    instance["local_artifact_storage"]["config"]["base_dir"] = str(home / "storage")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    return home


@contextmanager
def closed_loop(
    tmp_path: Path,
    backend: str = "embedded",
    serve: str = "service",
    model: dict | None = None,
    **retrain: object,
) -> Iterator[Loop]:
    """A model trained and served, and the Dagster daemon running its sensor.

    ``model`` is a spec's model declaration, the drift model's by default. Served by
    `bentoml serve` of the service, or by `mlserve serve` of its bento.
    """
    model = model or drift_model(**retrain)
    name = model["name"]
    spec = write_spec(tmp_path / f"{name}.yaml", [model])
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
        owner_key(settings.home)
        assert train(
            settings, [spec], f"train_{name}", bentos=None if serve == "bento" else ()
        ).success
        env = {
            **service_env(settings, name, settings.predictions_url, tmp_path / "spool.db"),
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
            cmd = [mlserve, "serve", name, "--port", str(port)]
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
        # What the served model takes, as its own document says.
        described = http.get(f"{url}/model").raise_for_status().json()
        features = [f["name"] for f in described["features"]]
        yield Loop(url, MlflowClient(uri, uri), http, store, backends, name, features)
