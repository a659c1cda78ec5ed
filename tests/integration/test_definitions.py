"""The code location loads, and the factory gives each model its graph, checks and job."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from itertools import pairwise

import dagster as dg

from mlserve_assets.assembly import build_definitions
from mlserve_assets.ml.validation import CHECK_NAMES
from mlserve_assets.settings import PROJECT_ROOT, Settings

STAGES = [
    "dataset",
    "validated_dataset",
    "split",
    "candidates",
    "registered_version",
    "champion",
    "bento",
]


def test_bentoml_is_the_pinned_1_4_line():
    # An unpinned install silently resolves bentoml 0.5.3 next to this stack.
    assert version("bentoml").startswith("1.4.")


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(PROJECT_ROOT),
        "MLSERVE_HOME": str(tmp_path),
        "MLSERVE_DAGSTER_STORAGE": str(tmp_path / "dagster"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_each_model_gets_its_group_checks_and_job(settings):
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for model in ("breast_cancer", "wine", "diabetes", "churn"):
        keys = [dg.AssetKey([model, stage]) for stage in STAGES]
        for upstream, downstream in pairwise(keys):
            assert upstream in graph.get(downstream).parent_keys
        assert {graph.get(k).group_name for k in keys} == {model}
        checks = {c.name for c in graph.asset_check_keys if c.asset_key == keys[1]}
        assert checks == set(CHECK_NAMES)
        assert defs.resolve_job_def(f"train_{model}") is not None
    assert "mlflow" in graph.get(dg.AssetKey(["churn", "candidates"])).kinds


def test_locations_from_the_environment_reach_resources_as_env_vars(monkeypatch, tmp_path):
    secret = "s3cret-password"
    monkeypatch.setenv("MLSERVE_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://mlserve:{secret}@127.0.0.1:9/")
    monkeypatch.setenv("MLSERVE_PREDICTIONS_URL", f"sqlite:///{tmp_path / 'log.db'}?{secret}=1")
    defs = build_definitions(Settings.from_env())
    shown = {name: resource.model_dump() for name, resource in defs.resources.items()}
    assert secret not in repr(shown)
    assert defs.resources["prediction_log"].url == dg.EnvVar("MLSERVE_PREDICTIONS_URL")
    assert defs.resources["registry"].tracking_uri == dg.EnvVar("MLFLOW_TRACKING_URI")
    # At run time the variable's value is used: the asset reads the log the URL names.
    predictions = defs.resolve_assets_def(dg.AssetKey(["wine", "predictions"]))
    result = dg.materialize([predictions])
    assert result.success
    assert (tmp_path / "log.db").exists()


def test_checks_explain_themselves_and_assets_carry_the_specs_description():
    settings = Settings.from_env()
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for key in graph.asset_check_keys:
        assert graph.get_check_spec(key).description, key
    node = graph.get(dg.AssetKey(["breast_cancer", "dataset"]))
    assert node.metadata["model"].startswith("Malignant (0) or benign (1)")
