"""The mlserve component in a project laid out the `dg` way (examples/dg_project), through `dg`.

The expected definitions come from the other way in: the same models written to a spec file and
built by the ``MLSERVE_SPECS`` code location.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow import MlflowClient

from harness.registries import tracking_store
from harness.servers import child_env
from mlserve_assets.assembly import build_definitions
from mlserve_assets.settings import PROJECT_ROOT, Settings

PROJECT = PROJECT_ROOT / "examples" / "dg_project"
DEFS = PROJECT / "src" / "mlserve_example" / "defs"
DG = str(Path(sys.executable).parent / "dg")


def _dg(args: list[str], project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`dg` in the project's folder, as a user runs it once the project is installed."""
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = child_env(
        {
            "PYTHONPATH": str(project / "src"),  # what `pip install -e .` of the project gives
            "DAGSTER_HOME": str(home / "dagster"),
            "MLSERVE_HOME": str(home / "mlserve"),
        }
    )
    for variable in ("MLSERVE_SPECS", "MLSERVE_PREDICTIONS_URL"):
        env.pop(variable, None)
    return subprocess.run(
        [DG, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def _same_models_as_a_spec_file(tmp_path: Path) -> Settings:
    inline = yaml.safe_load((DEFS / "wine" / "defs.yaml").read_text())["attributes"]["models"]
    from_file = yaml.safe_load((DEFS / "diabetes" / "diabetes.yaml").read_text())["models"]
    spec = tmp_path / "same.yaml"
    spec.write_text(yaml.safe_dump({"models": inline + from_file}))
    return Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=tracking_store(tmp_path),
        artifact_location=None,
        spec_paths=[spec],
        predictions_url=f"sqlite:///{tmp_path / 'p.db'}",
        bentoml_home=tmp_path / "bentoml",
    )


def test_dg_lists_the_same_definitions_as_the_spec_file_location(tmp_path):
    listed = _dg(["list", "defs", "--json"], PROJECT, tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    got = json.loads(listed.stdout)

    expected = build_definitions(_same_models_as_a_spec_file(tmp_path))
    graph = expected.resolve_asset_graph()
    assert {a["asset_key"] for a in got["assets"]} == {
        key.to_user_string() for key in graph.get_all_asset_keys()
    }
    assert {(c["asset_key"], c["name"]) for c in got["asset_checks"]} == {
        (key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys
    }
    assert {s["name"] for s in got["sensors"]} == {s.name for s in expected.sensors}
    # train_all belongs to the spec-file location: each component instance would bring its own.
    jobs = {j.name for j in expected.jobs} - {"train_all"}
    assert {j["name"] for j in got["jobs"]} == jobs
    assert {r["name"] for r in got["resources"]} == {
        "registry",
        "prediction_log",
        "bentos",
        "alerts",
    }

    checked = _dg(["check", "defs"], PROJECT, tmp_path)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]


def test_dg_check_defs_names_the_file_line_and_field_of_a_bad_model(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    wine = project / "src" / "mlserve_example" / "defs" / "wine" / "defs.yaml"
    wine.write_text(wine.read_text().replace("metric: accuracy", "metric: rmse"))
    checked = _dg(["check", "defs"], project, tmp_path)
    assert checked.returncode != 0
    said = checked.stdout + checked.stderr
    line = 1 + wine.read_text().splitlines().index("      metric: rmse")
    assert f"attributes.models.0.metric at {wine}:{line}" in said, said[-3000:]
    assert "metric 'rmse' is for regression, not classification" in said

    # A column the data does not have: found at load time, like `mlserve validate` finds it.
    wine.write_text(
        wine.read_text()
        .replace("metric: rmse", "metric: accuracy")
        .replace("target: target", "target: cultivar")
    )
    checked = _dg(["check", "defs"], project, tmp_path)
    assert checked.returncode != 0
    said = checked.stdout + checked.stderr
    assert f"{wine}: model 'wine': field 'target': column 'cultivar' is not in the source" in said


def test_a_model_from_a_spec_file_attribute_trains_with_dg_launch(tmp_path):
    launched = _dg(["launch", "--job", "train_diabetes"], PROJECT, tmp_path)
    assert launched.returncode == 0, launched.stderr[-3000:]
    # Homed where the environment says, as everywhere in mlserve; the gate promoted version 1.
    uri = f"sqlite:///{tmp_path / 'mlserve' / 'mlflow.db'}"
    champion = MlflowClient(uri, uri).get_model_version_by_alias("diabetes", "champion")
    assert str(champion.version) == "1"
    assert any((tmp_path / "mlserve" / "bentoml" / "bentos" / "mlserve-diabetes").iterdir())
