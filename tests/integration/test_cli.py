"""The `mlserve` command as a user meets it: validate, train, see it in `mlserve dev`, serve."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import yaml
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.tree import DecisionTreeClassifier

from harness.cli import mlserve
from harness.project import STAGES, write_spec
from harness.registries import register_new_version, registry_copy
from harness.servers import child_env, free_port, managed_process
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.settings import PROJECT_ROOT
from serving.http.auth import ApiKeys, local_key

MLSERVE = str(Path(sys.executable).parent / "mlserve")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLSERVE, *args], env=child_env(env), capture_output=True, text=True, timeout=300
    )


def test_validate_lists_models_and_rejects_a_bad_spec(tmp_path):
    good = mlserve(["validate"], {})
    assert good.returncode == 0, good.stderr
    assert "ok  churn: classification, 2 candidates, balanced_accuracy" in good.stdout
    bad = write_spec(tmp_path / "bad.yaml", [{"name": "x", "task": "clustering"}])
    refused = mlserve(["validate", str(bad)], {})
    assert refused.returncode == 1
    assert f"{bad}: model 'x': field 'task'" in refused.stderr


def test_serve_runs_the_newest_bento_and_explains_when_there_is_none(trained, tmp_path):
    env = {
        "MLSERVE_HOME": str(tmp_path),
        "BENTOML_HOME": str(trained.bentoml_home),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens: the bento is enough
        "MLSERVE_POLL_SECONDS": "0",
    }
    started = time.monotonic()
    missing = _run(["serve", "no_such_model", "--wait", "1"], env)
    assert missing.returncode == 1
    assert time.monotonic() - started >= 1  # waited for a bento before giving up
    assert "no bento for 'no_such_model'" in missing.stderr
    assert "materialise no_such_model/bento first" in missing.stderr

    champion = MlflowClient(
        trained.mlflow_tracking_uri, trained.mlflow_tracking_uri
    ).get_model_version_by_alias("breast_cancer", "champion")
    records = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(2)
    with ExitStack() as replicas:
        # Two replicas on one BentoML home, as the stack's replicas share its volume: each
        # counts its own requests (BentoML empties its home's metrics folder at start).
        urls = []
        for replica in ("a", "b"):
            port = free_port()
            cmd = [MLSERVE, "serve", "breast_cancer", "--port", str(port)]
            urls.append(f"http://127.0.0.1:{port}")
            ready = f"{urls[-1]}/readyz"
            replicas.enter_context(managed_process(cmd, env, tmp_path / f"{replica}.log", ready))
        for url, times in zip(urls, (1, 3), strict=True):
            for _ in range(times):
                response = httpx.post(
                    f"{url}/predict", json={"records": records.to_dict("records")}, timeout=30
                )
                assert response.status_code == 200, response.text
        counted = [_predictions_counted(url) for url in urls]
    versions = {a["model_version"] for a in response.json()["predictions"]}
    assert versions == {str(champion.version)}
    assert counted == [2.0, 6.0]


def _predictions_counted(url: str) -> float:
    metrics = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text)
    family = next(f for f in metrics if f.name == "mlserve_predictions")
    return sum(s.value for s in family.samples if s.name == "mlserve_predictions_total")


def test_bento_releases_the_registry_champion_building_it_where_the_home_has_none(
    trained, tmp_path
):
    # What the CI workflow's image job runs on a machine with an empty BentoML home, against a
    # registry whose newest version is not the champion: the alias decides what is released.
    uri = registry_copy(trained, tmp_path)
    cancer = load_breast_cancer(as_frame=True)
    stump = DecisionTreeClassifier(max_depth=1).fit(cancer.data, cancer.target)
    newest = register_new_version(
        MlflowRegistry(tracking_uri=uri), "breast_cancer", stump, cancer.data
    )
    env = {
        "MLSERVE_HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": uri,
        "MLSERVE_ARTIFACT_ROOT": trained.artifact_location,
    }
    champion = str(
        MlflowClient(uri, uri).get_model_version_by_alias("breast_cancer", "champion").version
    )
    assert champion != newest
    built = mlserve(["bento", "breast_cancer", "--json"], env)
    assert built.returncode == 0, built.stderr
    released = json.loads(built.stdout)
    assert released["version"] == champion
    # The bento's own manifest says which version it holds, read here without mlserve's code.
    name, tag = released["bento"].split(":")
    manifest = yaml.safe_load((tmp_path / "bentoml/bentos" / name / tag / "bento.yaml").read_text())
    assert manifest["labels"] == {"model": "breast_cancer", "mlflow_version": champion}
    again = mlserve(["bento", "breast_cancer", "--json"], env)
    assert json.loads(again.stdout)["bento"] == released["bento"]  # found, not built twice
    assert len(list((tmp_path / "bentoml/bentos" / name).glob("*/bento.yaml"))) == 1

    # The wine example was never trained in this registry: nothing to release, exit 1.
    for args, why in (
        (["bento", "wine"], "wine has no champion in the registry"),
        (["bento", "breast_cancer", "--version", "99"], "breast_cancer has no version 99"),
        (["bento", "no_such_model"], "no model 'no_such_model' in the specs"),
    ):
        refused = mlserve(args, env)
        assert refused.returncode == 1
        assert why in refused.stderr
    # A build that fails says which version and why, in a line: a BentoML home that is a file.
    (tmp_path / "file").touch()
    failed = mlserve(["bento", "breast_cancer"], {**env, "BENTOML_HOME": str(tmp_path / "file")})
    assert failed.returncode == 1
    assert f"bento build for breast_cancer v{champion} failed: NotADirectoryError" in failed.stderr


def test_key_prints_a_key_and_an_entry_holding_only_its_hash():
    made = mlserve(["key", "--scopes", "feedback,admin"], {})
    assert made.returncode == 0, made.stderr
    key = re.search(r"key \(give to the client\):\s+(\S+)", made.stdout).group(1)
    entry = re.search(r"entry \(MLSERVE_API_KEYS_FILE\):\s+(\S+)", made.stdout).group(1)
    assert entry == f"feedback,admin:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    assert key not in entry
    keys = ApiKeys.parse(entry, open_scopes="")
    assert keys.allows("feedback", key) and keys.allows("admin", key)
    assert keys.allows("predict", key) is False
    refused = mlserve(["key", "--scopes", "feedback,root"], {})
    assert refused.returncode == 2
    assert "--scopes" in refused.stderr and "root" in refused.stderr


def test_the_local_key_is_private_stable_and_admits_every_scope(tmp_path):
    key, keys_file = local_key(tmp_path / "home")
    assert (tmp_path / "home" / "api-key").stat().st_mode & 0o777 == 0o600
    assert local_key(tmp_path / "home") == (key, keys_file)  # made once, then reused
    assert key not in keys_file.read_text()
    keys = ApiKeys.read("", keys_file, open_scopes="")
    assert all(keys.allows(scope, key) for scope in ("predict", "feedback", "admin"))
    assert keys.allows("feedback", key + "x") is None


def test_plan_shows_what_each_model_becomes_without_running_anything(tmp_path):
    env = {
        "MLSERVE_HOME": str(tmp_path / "home"),
        "MLSERVE_SPECS": str(PROJECT_ROOT / "examples/classification.yaml"),
    }
    planned = mlserve(["plan", "--json"], env)
    assert planned.returncode == 0, planned.stderr
    models = json.loads(planned.stdout)
    assert set(models) == {"breast_cancer", "wine"}
    stages = models["wine"]["assets"]
    assert set(stages) == set(STAGES)
    chain = ["dataset", "validated_dataset", "split", "candidates", "registered_version"]
    assert [s for s in stages if s in chain] == chain  # upstream first
    assert stages.index("feedback") < stages.index("split") < stages.index("champion")
    checks = models["wine"]["checks"]
    assert checks[0] == "predictions:no_feature_drift"  # a warning: it blocks nothing
    assert len(checks) == 5 and all(c.endswith("(blocking)") for c in checks[1:])
    assert models["wine"]["bento"] == "mlserve-wine"
    assert models["wine"]["sensor"].startswith("retrain_wine: Retrain wine")
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing ran
    text = mlserve(["plan"], env).stdout
    assert "  job     train_breast_cancer" in text


def test_init_scaffolds_a_spec_that_validates_and_trains(tmp_path):
    wine = load_wine(as_frame=True).frame
    wine["region"] = np.where(wine["alcohol"] > 13, "north", "south")  # a text column
    wine.loc[::7, "magnesium"] = np.nan  # gaps
    wine = wine.rename(columns={"target": "cultivar"})
    wine = wine[[c for c in wine.columns if c != "cultivar"] + ["cultivar"]]  # the last column
    (tmp_path / "data").mkdir()
    wine.to_csv(tmp_path / "data" / "wine.csv", index=False)
    spec = tmp_path / "wine.yaml"
    made = mlserve(["init", str(tmp_path / "data" / "wine.csv"), "--output", str(spec)], {})
    assert made.returncode == 0, made.stderr
    [model] = yaml.safe_load(spec.read_text())["models"]
    assert (model["target"], model["task"], model["metric"]) == (
        "cultivar",
        "classification",
        "accuracy",
    )
    assert model["source"] == {"kind": "file", "path": "data/wine.csv"}  # relative to the spec
    majority = wine["cultivar"].value_counts(normalize=True).max()
    assert model["gate"]["threshold"] == round(majority + 0.01, 3)
    assert model["columns"]["region"] == {"dtype": "string", "nullable": False}
    # Whole numbers with gaps: an integer column (pandas read it as floats for its gaps).
    assert model["columns"]["magnesium"] == {"dtype": "integer", "nullable": True}
    assert model["columns"]["cultivar"]["allowed"] == [0, 1, 2]
    assert len(model["candidates"]) == 2
    env = {"MLSERVE_HOME": str(tmp_path / "home"), "MLSERVE_SPECS": str(spec)}
    assert mlserve(["validate"], env).returncode == 0
    trained = _run(["train"], env)  # the real entry point, as a user runs it
    assert trained.returncode == 0, trained.stdout + trained.stderr[-2000:]
    assert re.search(r"^wine +9 +[\d.]+ .* PROMOTED v1: ", trained.stdout, re.M)
    # mlserve's lines only: MLflow's own registration notices stay out of the report.
    printed = trained.stdout + trained.stderr
    assert "Successfully registered model" not in printed and "Created version" not in printed

    diabetes = load_diabetes(as_frame=True).frame
    diabetes.to_csv(tmp_path / "diabetes.csv", index=False)
    printed = mlserve(["init", str(tmp_path / "diabetes.csv"), "--name", "sugar"], {})
    [model] = yaml.safe_load(printed.stdout)["models"]
    assert (model["name"], model["task"], model["metric"]) == ("sugar", "regression", "r2")
    assert model["gate"]["threshold"] == 0.01
