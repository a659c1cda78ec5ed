"""Families: three champion families served by scikit-learn and by their ONNX twin, in one run.

A linear champion costs the service little; a 200-tree forest or gradient boosting costs it most
of each request under scikit-learn. Each family is registered once (its twin made and verified as
training makes it) and served three ways at once: the service with the twin, the service forced
to scikit-learn (``MLSERVE_RUNTIME=sklearn``), and the plain FastAPI anchor serving the same
fitted model. Ratios are to the logistic champion served by scikit-learn (the baseline) and to
the family's anchor.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.load import bodies as request_bodies
from bench.load import drive
from bench.report import Bench, Row
from bench.store import bench_env
from harness.registries import register_new_version
from harness.servers import bentoml_server, free_port, managed_process
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import Settings
from serving.registry import connect, move_alias
from serving.store.predictions import PredictionStore

FAMILIES = {
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    "forest": lambda: RandomForestClassifier(200, random_state=0),
    "boosting": lambda: HistGradientBoostingClassifier(random_state=0),
}
LABELS = {"logistic": "logistic", "forest": "200-tree forest", "boosting": "gradient boosting"}
WAYS = {"onnx": "service, onnx twin", "sklearn": "service, scikit-learn", "anchor": "anchor"}


def measure(
    bench: Bench,
    settings: Settings,
    seconds: int,
    connections: int,
    rate: int,
    chosen: list[str],
) -> list[Row]:
    """The ``chosen`` families served every way at once; each round drives each server in turn.

    Ratios to the logistic champion need it among them; without it they are left out.
    """
    work = bench.work / "families"
    work.mkdir()
    cancer = load_breast_cancer(as_frame=True)
    fit, held_out = cancer.data.iloc[::2], cancer.data.iloc[1::2]
    bodies = request_bodies(held_out)
    moderate = f"1 record at {rate}/s"
    registry = MlflowRegistry(
        tracking_uri=settings.mlflow_tracking_uri, artifact_location=settings.artifact_location
    )
    with ExitStack() as stack:
        urls = {}
        for family in chosen:
            name = f"bc_{family}"
            estimator = FAMILIES[family]().fit(fit, cancer.target.iloc[::2])
            version = register_new_version(registry, name, estimator, fit, held_out)
            for way in WAYS:
                db = bench.database(f"families_{name}_{way}")
                _champion(settings, db, name, version)
                env = {**bench_env(settings, work / f"{name}-{way}", db), "MLSERVE_MODEL": name}
                log = work / f"{name}-{way}.log"
                if way == "anchor":
                    port = free_port()
                    command = [sys.executable, "-m", "uvicorn", "bench.anchor_fastapi:app"]
                    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
                    url = f"http://127.0.0.1:{port}"
                    stack.enter_context(managed_process(command, env, log, f"{url}/docs"))
                else:
                    env["MLSERVE_RUNTIME"] = "auto" if way == "onnx" else "sklearn"
                    url = stack.enter_context(
                        bentoml_server("serving.service:ModelService", env, log)
                    )
                urls[(family, way)] = url
        results = drive(urls, bodies, bench.rounds, (seconds, connections, rate), work)
    return _rows(results, list(bodies), moderate)


def _champion(settings: Settings, predictions_url: str, name: str, version: str) -> None:
    """``version`` made the champion, recorded in the log the server at ``predictions_url`` has."""
    store = PredictionStore(predictions_url)
    store.create_schema()
    client = connect(settings.mlflow_tracking_uri)
    move_alias(client, store, name, version, by="bench", reason="a family's champion")
    store.dispose()


def _rows(results: dict, bodies: list[str], moderate: str) -> list[Row]:
    base, linear = results.get(("logistic", "sklearn")), results.get(("logistic", "onnx"))
    rows = []
    for (family, way), by_load in results.items():
        anchor = results[(family, "anchor")]
        for load, r in by_load.items():
            value = f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            x_base = None if base is None else r["rps"] / base[load]["rps"]
            x_anchor = r["rps"] / anchor[load]["rps"]
            target, met = "", None
            if way == "onnx" and load == moderate:
                target, met = "p99 < 20 ms", r["p99_ms"] < 20
            elif way == "onnx" and load in bodies:
                against = family != "logistic" and linear is not None
                target = ">= 1x its anchor" + (", >= 0.8x logistic" if against else "")
                met = x_anchor >= 1 and (not against or r["rps"] >= 0.8 * linear[load]["rps"])
            rows.append(
                Row(
                    "families",
                    f"{LABELS[family]}: {WAYS[way]}, {load}",
                    value,
                    x_base,
                    x_anchor,
                    target,
                    met,
                )
            )
    return rows
