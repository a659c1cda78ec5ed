"""Training: spec -> champion against a hand-written MLflow script, in one run.

Times, in interleaved rounds on fresh SQLite stores,
(a) mlserve's ``train_breast_cancer`` job up to the champion (the bento left out), and (b) the
script a careful user would write for the same three candidates: fit each, log a run per
candidate, log the best model (with its pip requirements given, as mlserve does, so neither pays
MLflow's ~4 s of inference), register it and set the ``champion`` alias. Both run in this
process after a warm-up round, so imports are paid by neither.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import mlflow
import skops.io
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.report import Bench, Row, median
from bench.store import bench_settings
from mlserve_assets.assembly import build_definitions

MODEL = "breast_cancer"


def mlserve(work: Path) -> float:
    """Seconds from the spec to a champion, through Dagster, on a fresh store."""
    settings = bench_settings(work)
    started = time.perf_counter()
    defs = build_definitions(settings)
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    to_champion = [k for k in keys if k.path[0] == MODEL and k.path[-1] != "bento"]
    result = defs.resolve_job_def(f"train_{MODEL}").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=to_champion,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    seconds = time.perf_counter() - started
    uri = settings.mlflow_tracking_uri
    assert result.success and MlflowClient(uri, uri).get_model_version_by_alias(MODEL, "champion")
    return seconds


def handwritten(work: Path) -> float:
    """Seconds for the same candidates fitted, logged, the best registered and aliased by hand."""
    started = time.perf_counter()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    frame = load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=42, stratify=y
    )
    candidates = {
        "scaled_logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest": RandomForestClassifier(n_estimators=100, random_state=0),
        "gradient_boosting": GradientBoostingClassifier(random_state=0),
    }
    experiment = mlflow.create_experiment("handwritten", (work / "artifacts").as_uri())
    scores = {}
    with mlflow.start_run(experiment_id=experiment):
        for name, estimator in candidates.items():
            with mlflow.start_run(run_name=name, nested=True, experiment_id=experiment):
                estimator.fit(x_train, y_train)
                scores[name] = accuracy_score(y_test, estimator.predict(x_test))
                mlflow.log_params(estimator.get_params(deep=False))
                mlflow.log_metric("accuracy", scores[name])
        best = candidates[max(scores, key=scores.get)]
        info = mlflow.sklearn.log_model(
            best,
            name="model",
            input_example=x_train.head(5),
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(best)),
        )
    version = mlflow.register_model(info.model_uri, MODEL)
    MlflowClient(uri, uri).set_registered_model_alias(MODEL, "champion", version.version)
    return time.perf_counter() - started


def measure(bench: Bench) -> list[Row]:
    """Interleaved rounds after a warm-up round that neither is timed on."""
    ways = {"mlserve": mlserve, "script": handwritten}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for number in range(bench.rounds + 1):
        for name, way in ways.items():
            work = Path(tempfile.mkdtemp(prefix="mlserve-train-bench-"))
            seconds = way(work)
            shutil.rmtree(work, ignore_errors=True)
            if number:  # round 0 warms imports and caches for both
                times[name].append(seconds)
    script, ours = median(times["script"]), median(times["mlserve"])
    return [
        Row("training", "hand-written MLflow script, 3 candidates -> alias", f"{script:.2f} s"),
        Row(
            "training",
            "mlserve spec -> champion (Dagster job, no bento)",
            f"{ours:.2f} s ({min(times['mlserve']):.2f}-{max(times['mlserve']):.2f})",
            x_baseline=ours / script,
            target="<= 1.5x the script's time",
            met=ours / script <= 1.5,
        ),
    ]
