"""The production stack built from this repository and run with podman (`make test-containers`).

The loop runs through the containers only: a model materialised through the webserver's GraphQL
API (what the UI's button sends), the bento waited for by the serving replicas, predictions and
labels sent through the balancer to three of them, the daemon's sensor retraining, the gate
promoting, every replica following, and Prometheus scraping each. Figures go to
``test-artifacts/containers.json``.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest
import yaml

from harness.dagster_ui import graphql, launch_job, materialize_group, runs
from harness.servers import s3_client
from harness.stack import IMAGES, RUN_LABEL, Built, Stack, build, podman
from mlserve_assets.cli.simulation import FEATURES, SCENARIOS, concept_rows
from mlserve_assets.settings import PROJECT_ROOT
from serving.http.auth import entry, key_id

pytestmark = pytest.mark.containers

MODEL = "drift"
REPLICAS = ("serving-1", "serving-2", "serving-3")
HAPROXY_CONFIG = "/usr/local/etc/haproxy:ro"  # where the compose file mounts it
DAGSTER_HOME = "/opt/dagster/home"  # the image's
AT_ONCE = ("breast_cancer", "wine", "diabetes")
POLL_SECONDS = 120  # the replicas' registry poll here
DOCKER_ID = "docker/container_id"  # the tag DockerRunLauncher puts on each run
KEY = "stack-test-key-with-every-scope"
REPORT = PROJECT_ROOT / "test-artifacts" / "containers.json"


def _env_file() -> dict[str, str]:
    """.env.example as a user fills it in (every secret made), serving the drift model."""
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    made = {k: secrets.token_hex(16) for k in env if k.endswith(("_PASSWORD", "_SECRET_KEY"))}
    # The test's one key sends the ground truth: declared a trusted source, as the user would.
    return {**env, **made, "MLSERVE_MODEL": MODEL, "MLSERVE_TRUSTED_SOURCES": key_id(KEY)}


def _start(stack: Stack) -> None:
    """Every service in dependency order, each waited for as compose's healthchecks would."""
    ports, data = stack.ports, stack.volume("mlserve-data")
    stack.run(
        "postgres",
        None,
        {**stack.environment("postgres"), "PGPORT": str(ports["postgres"])},
        [
            (stack.volume("postgres-data"), "/var/lib/postgresql/data"),
            (PROJECT_ROOT / "infra/postgres/init.sh", "/docker-entrypoint-initdb.d/init.sh:ro"),
        ],
    )
    stack.wait(
        "postgres",
        lambda: "ready to accept connections" in podman("logs", f"{stack.prefix}-postgres").stderr,
        60,
    )
    stack.run("minio", ["moto_server", "-H", "127.0.0.1", "-p", str(ports["minio"])], {})
    s3 = f"http://127.0.0.1:{ports['minio']}"
    stack.wait("minio", lambda: s3_client(s3).create_bucket(Bucket="mlflow") is not None, 60)

    mlflow_port = {"--port": str(ports["mlflow"]), "--host": "127.0.0.1"}
    stack.run("mlflow", stack.command("mlflow", mlflow_port), stack.environment("mlflow"))
    mlflow = f"http://127.0.0.1:{ports['mlflow']}"
    stack.wait("mlflow", lambda: httpx.get(f"{mlflow}/health").status_code == 200, 120)
    # Closed: the registry answers nobody without the password, and the pipeline with it.
    search = f"{mlflow}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(search).status_code == 401
    login = ("mlserve", stack.env["MLFLOW_ADMIN_PASSWORD"])
    assert httpx.get(search, auth=login).status_code == 200

    # The instance as the image carries it, its launcher given this host's volume folder (the
    # compose file's named volume) and a label that lets the test find and remove run containers.
    instance = yaml.safe_load((PROJECT_ROOT / "infra/dagster/dagster.yaml").read_text())
    launched = instance["run_launcher"]["config"]["container_kwargs"]
    assert launched["volumes"] == ["mlserve_mlserve-data:/var/lib/mlserve"]
    launched["volumes"] = [f"{data}:/var/lib/mlserve"]
    launched["labels"] = {RUN_LABEL: stack.prefix}
    (stack.root / "dagster.yaml").write_text(yaml.safe_dump(instance))
    mounts = [
        (data, "/var/lib/mlserve"),
        (stack.root / "dagster.yaml", f"{DAGSTER_HOME}/dagster.yaml:ro"),
    ]
    env = stack.environment("dagster-code") | {"DAGSTER_CURRENT_IMAGE": IMAGES["dagster-code"][0]}
    code = {"-p": str(ports["dagster-code"]), "-h": "127.0.0.1"}
    stack.run("dagster-code", stack.command("dagster-code", code), env, mounts)
    health = ["exec", f"{stack.prefix}-dagster-code", "dagster", "api", "grpc-health-check"]
    health += ["-p", str(ports["dagster-code"])]
    stack.wait("dagster-code", lambda: podman(*health).returncode == 0, 180)

    workspace = stack.root / "workspace.yaml"  # the compose one, with the code server's port
    workspace.write_text(
        (PROJECT_ROOT / "infra/dagster/workspace.yaml")
        .read_text()
        .replace("host: dagster-code", "host: 127.0.0.1")
        .replace("port: 4000", f"port: {ports['dagster-code']}")
    )
    mounts.append((workspace, f"{DAGSTER_HOME}/workspace.yaml:ro"))
    # Runs in containers of their own, through podman's Docker-compatible API, on this host's
    # network as every container here.
    mounts.append((stack.docker_api(), "/var/run/docker.sock"))
    launcher = stack.environment("dagster-daemon") | {"MLSERVE_RUN_NETWORK": "host"}
    flags = {"-p": str(ports["dagster-webserver"]), "-h": "127.0.0.1"}
    stack.run("dagster-webserver", stack.command("dagster-webserver", flags), launcher, mounts)
    web = f"http://127.0.0.1:{ports['dagster-webserver']}/graphql"
    stack.run("dagster-daemon", stack.command("dagster-daemon", {}), launcher, mounts)
    stack.wait(
        "dagster-webserver",
        lambda: bool(graphql(web, "{ assetNodes { id } }")["assetNodes"]),
        180,
    )

    keys = stack.root / "api-keys"
    keys.write_text(entry("predict,feedback,admin", KEY) + "\n")
    for replica in REPLICAS:
        serve = {"--port": str(ports[replica]), "--host": "127.0.0.1"}
        # Polls too rare to matter: only the recorded move's notification can swap them in time.
        polls = {"MLSERVE_POLL_SECONDS": str(POLL_SECONDS)}
        stack.run(
            replica,
            stack.command(replica, serve),
            stack.environment(replica) | polls,
            [(data, "/var/lib/mlserve"), (keys, "/run/secrets/api_keys:ro")],
        )
    balancer = stack.environment("balancer") | {"LISTEN": f"127.0.0.1:{ports['balancer']}"}
    stack.run("balancer", None, balancer, [(PROJECT_ROOT / "infra/haproxy", HAPROXY_CONFIG)])

    alertmanager = stack.root / "alertmanager"
    alertmanager.mkdir()
    routes = (PROJECT_ROOT / "infra/alertmanager/alertmanager.yml").read_text()
    (alertmanager / "alertmanager.yml").write_text(stack.localize(routes))
    flags = stack.command("alertmanager", {})
    flags += [
        f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
        "--cluster.listen-address=",  # host networking: no gossip port to collide on
    ]
    stack.run(
        "alertmanager",
        flags,
        {},
        [
            (alertmanager, "/etc/alertmanager:ro"),
            (stack.volume("alertmanager-data"), "/alertmanager"),
        ],
    )

    prometheus = stack.root / "prometheus"
    prometheus.mkdir()
    for name in ("prometheus.yml", "alerts.yml"):
        text = (PROJECT_ROOT / "infra/prometheus" / name).read_text()
        text = text.replace("localhost:9090", f"127.0.0.1:{ports['prometheus']}")
        (prometheus / name).write_text(stack.localize(text))
    flags = stack.command("prometheus", {})
    flags.append(f"--web.listen-address=127.0.0.1:{ports['prometheus']}")
    stack.run("prometheus", flags, {}, [(prometheus, "/etc/prometheus:ro")])


@pytest.fixture(scope="module")
def images() -> dict[str, Built]:
    built = {}
    for image, dockerfile in sorted(set(IMAGES.values())):
        built[image] = build(image, dockerfile)
    return built


def test_the_loop_runs_through_the_containers(images, tmp_path):
    report: dict[str, object] = {
        "images": {
            b.image: {"build_s": round(b.seconds, 1), "mb": round(b.megabytes)}
            for b in images.values()
        }
    }
    stack = Stack(tmp_path, _env_file())
    try:
        started = time.monotonic()
        _start(stack)
        report["stack_start_s"] = round(time.monotonic() - started, 1)

        # Materialise the model's group as the UI's "Materialize all" does.
        web = f"http://127.0.0.1:{stack.ports['dagster-webserver']}/graphql"
        materialize_group(web, MODEL)

        # Every request goes through the balancer, so predictions and their labels reach
        # different replicas.
        url = f"http://127.0.0.1:{stack.ports['balancer']}"
        http = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        for replica in REPLICAS:
            here = f"http://127.0.0.1:{stack.ports[replica]}"
            stack.wait(replica, lambda h=here: httpx.get(f"{h}/readyz").status_code == 200, 300)
        stack.wait("balancer", lambda: httpx.get(f"{url}/readyz").status_code == 200, 30)
        assert httpx.post(f"{url}/feedback", json={}).status_code == 401  # keys required

        def served(rows) -> list[dict]:
            answer = http.post(
                f"{url}/predict", json={"records": rows[FEATURES].to_dict("records")}
            )
            assert answer.status_code == 200, answer.text
            return answer.json()["predictions"]

        assert {
            p["model_version"] for p in served(concept_rows(5, SCENARIOS["rotation"].final(), 1))
        } == {"1"}

        # Shifted traffic, each batch labelled: past min_feedback_rows (150) the sensor retrains.
        crossed = None
        for number in range(5):
            rows = concept_rows(50, SCENARIOS["rotation"].final(), seed=number)
            answers = served(rows)
            items = [
                {"prediction_id": a["prediction_id"], "ground_truth": int(t)}
                for a, t in zip(answers, rows["label"], strict=True)
            ]
            stored = http.post(f"{url}/feedback/batch", json={"feedback": items}).json()
            assert {r["status"] for r in stored["results"]} == {201}, stored
            if number == 2:
                crossed = time.monotonic()
        probe = concept_rows(5, SCENARIOS["rotation"].final(), 99)
        stack.wait(
            "balancer",
            lambda: served(probe)[0]["model_version"] != "1",
            300,
        )
        report["loop_s_threshold_to_new_version"] = round(time.monotonic() - crossed, 1)
        # The first answer by the new version came from one replica; the others follow it within
        # a model load (the move's notification), far inside their next poll.
        swapped = time.monotonic()
        for replica in REPLICAS:
            here = f"http://127.0.0.1:{stack.ports[replica]}/model"
            stack.wait(replica, lambda h=here: http.get(h).json()["version"] != "1", 30)
        report["replicas_s_until_all_serve_it"] = round(time.monotonic() - swapped, 1)
        assert report["replicas_s_until_all_serve_it"] < POLL_SECONDS / 4

        # Prometheus scrapes the serving container.
        prom = f"http://127.0.0.1:{stack.ports['prometheus']}"

        def scraped() -> bool:
            def value(expr: str) -> float:
                query = {"query": expr}
                answer = httpx.get(f"{prom}/api/v1/query", params=query).json()["data"]["result"]
                return float(answer[0]["value"][1]) if answer else 0.0

            every = value('count(up{job="mlserve-serving"} == 1)') == len(REPLICAS)
            return every and value('sum(mlserve_predictions_total{job="mlserve-serving"})') >= 250

        stack.wait("prometheus", scraped, 90)

        # Prometheus found the stack's Alertmanager, which alerts reach (the path to a webhook
        # is tested with real processes in tests/integration/test_alerting.py).
        def alerting() -> bool:
            found = httpx.get(f"{prom}/api/v1/alertmanagers").json()["data"]
            return len(found["activeAlertmanagers"]) == 1

        stack.wait("prometheus", alerting, 60)

        # Every run so far (the materialisation, the sensor's retraining) ran in a container of
        # its own, started by the daemon through the Docker API.
        _in_containers(stack, _finished(web, [r["runId"] for r in runs(web)]))

        report["runs_at_once"] = _retrain_at_once(stack, web)
    except AssertionError as failed:
        # A failure outside a wait (an answer, a status) names no container: show them all.
        logs = {name: stack.logs(name) for name in IMAGES if name in stack.started_services}
        failed.add_note("\n".join(f"--- {n} ---\n{log[-1500:]}" for n, log in logs.items()))
        raise
    finally:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2))
        stack.stop()
    print(json.dumps(report, indent=2))  # noqa: T201 - the figures the README quotes


def _finished(web: str, ids: list[str], timeout: float = 600) -> list[dict]:
    """The runs ``ids`` once each ended (a bento is built after the alias moved): all succeeded."""
    deadline = time.monotonic() + timeout
    while not all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs(web, ids)):
        assert time.monotonic() < deadline, runs(web, ids)
        time.sleep(2)
    done = runs(web, ids)
    assert {r["status"] for r in done} == {"SUCCESS"}, done
    return done


def _in_containers(stack: Stack, done: list[dict]) -> None:
    """Each run names the container it ran in, which podman ran and saw exit 0.

    A run is marked a success from inside its container, moments before the container exits.
    """
    deadline = time.monotonic() + 30
    while True:
        containers = {c["Id"]: c for c in stack.run_containers()}
        ran = [containers[t["value"]] for r in done for t in r["tags"] if t["key"] == DOCKER_ID]
        assert len(ran) == len(done), (done, list(containers))
        if all(c["Exited"] for c in ran) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {(c["Exited"], c["ExitCode"]) for c in ran} == {(True, 0)}, ran


def _most_at_once(done: list[dict]) -> int:
    """The most runs running at one moment, from their start and end times."""
    edges = sorted([(r["startTime"], 1) for r in done] + [(r["endTime"], -1) for r in done])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def _retrain_at_once(stack: Stack, web: str) -> dict[str, object]:
    """M models' training launched together: the queue runs two at a time, each in a container.

    Returns each run's wait in the queue and run time, and the most that ran at once.
    """
    done = _finished(web, [launch_job(web, f"train_{model}") for model in AT_ONCE])
    _in_containers(stack, done)
    most = _most_at_once(done)
    assert most == 2  # max_concurrent_runs, and no more
    figures: dict[str, object] = {
        r["jobName"]: {
            "queued_s": round(r["startTime"] - r["creationTime"], 1),
            "ran_s": round(r["endTime"] - r["startTime"], 1),
        }
        for r in done
    }
    return figures | {"most_at_once": most}
