"""The compose file's stack, run with podman on one host's network (`make test-containers`).

Each service keeps the compose file's command, environment and mounts; only what host networking
changes is rewritten: service names become 127.0.0.1 and each service gets a port of its own.
Images that cannot be pulled here are stood in for by images built from this repository's
Dockerfiles on a local Debian base (``IMAGES``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.servers import free_port
from mlserve_assets.settings import PROJECT_ROOT

BASE = "localhost/debian-python:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# service -> (local image, Dockerfile); several services share the project image.
IMAGES = {
    "postgres": ("localhost/mlserve-postgres:test", "infra/postgres/Dockerfile"),
    "minio": ("localhost/mlserve-s3:test", "infra/s3/Dockerfile"),
    "mlflow": ("localhost/mlserve-mlflow:test", "infra/mlflow/Dockerfile"),
    "dagster-code": ("localhost/mlserve:test", "infra/Dockerfile"),
    "dagster-webserver": ("localhost/mlserve:test", "infra/Dockerfile"),
    "dagster-daemon": ("localhost/mlserve:test", "infra/Dockerfile"),
    **{f"serving-{i}": ("localhost/mlserve:test", "infra/Dockerfile") for i in (1, 2, 3)},
    "balancer": ("localhost/mlserve-haproxy:test", "infra/haproxy/Dockerfile"),
    "prometheus": ("localhost/mlserve-prometheus:test", "infra/prometheus/Dockerfile"),
    "alertmanager": ("localhost/mlserve-alertmanager:test", "infra/alertmanager/Dockerfile"),
}
RUN_LABEL = "mlserve-stack"
"""The label on the containers a stack's run launcher starts, valued with the stack's prefix."""
# The port each service listens on inside the compose network.
COMPOSE_PORTS = {
    "postgres": 5432,
    "minio": 9000,
    "mlflow": 5000,
    "dagster-code": 4000,
    "dagster-webserver": 3000,
    **{f"serving-{i}": 3000 for i in (1, 2, 3)},
    "balancer": 3000,
    "prometheus": 9090,
    "alertmanager": 9093,
}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A podman command, its output kept for the failure message."""
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Built:
    """An image, how long it took to build and its size: the README's figures."""

    image: str
    seconds: float
    megabytes: float


def build(image: str, dockerfile: str) -> Built:
    """One image from the repository, on the local base; the machine's CA bundle as a secret."""
    started = time.monotonic()
    done = subprocess.run(
        [
            *("podman", "build", "--network", "host", "--build-arg", f"BASE={BASE}"),
            *("--secret", f"id=ca,src={CA_BUNDLE}", "-t", image, "-f", dockerfile, "."),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"podman build {dockerfile} failed:\n{done.stdout[-4000:]}")
    size = json.loads(podman("image", "inspect", image).stdout)[0]["Size"]
    return Built(image, time.monotonic() - started, size / 1e6)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` (``$$`` a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        name, required, error = match.group(1).partition(":?")
        name, _, default = name.partition(":-")
        if required and not env.get(name):
            raise ValueError(f"compose needs {name}: {error}")
        return env.get(name) or default

    return re.sub(r"\$\{([^}]+)\}", one, value).replace("$$", "$")


@dataclass
class Stack:
    """The running containers, their host ports, and where their files live."""

    root: Path
    env: dict[str, str]
    compose: dict = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    started_services: list[str] = field(default_factory=list)
    api: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
        self.ports = {service: free_port() for service in COMPOSE_PORTS}
        self.prefix = f"mlserve-test-{self.root.name}"

    def localize(self, text: str) -> str:
        """Service names and in-network ports become 127.0.0.1 and this host's ports."""
        text = interpolate(text, self.env)
        for service, inside in COMPOSE_PORTS.items():
            text = re.sub(
                rf"(?<![\w-]){re.escape(service)}:{inside}\b",
                f"127.0.0.1:{self.ports[service]}",
                text,
            )
        return text

    def service(self, name: str) -> dict:
        """The compose file's definition of a service."""
        return self.compose["services"][name]

    def environment(self, name: str) -> dict[str, str]:
        """A service's environment from the compose file, localised."""
        raw = self.service(name).get("environment", {})
        return {k: self.localize(str(v)) for k, v in raw.items()}

    def command(self, name: str, port_flags: dict[str, str]) -> list[str]:
        """The compose command, each of ``port_flags`` (an argument: its new value) replaced."""
        out = []
        for arg in self.service(name).get("command", []):
            arg = self.localize(str(arg))
            key = arg.split("=", 1)[0] if arg.startswith("--") and "=" in arg else None
            if key in port_flags:
                arg = f"{key}={port_flags[key]}"
            out.append(arg)
        for i, arg in enumerate(out[:-1]):
            if arg in port_flags:
                out[i + 1] = port_flags[arg]
        return out

    def volume(self, name: str) -> Path:
        """A named volume of the compose file, as a folder of this run."""
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(
        self,
        service: str,
        command: list[str] | None,
        env: dict[str, str],
        mounts: list[tuple[Path, str]] = (),
    ) -> None:
        """Start a service's container on the host's network (its image from ``IMAGES``)."""
        name = f"{self.prefix}-{service}"
        args = ["run", "-d", "--name", name, "--network", "host"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        for host, inside in mounts:
            # A folder the container writes is handed to its (non-root) user, as a named
            # volume would be.
            args += ["-v", f"{host}:{inside}" + ("" if inside.endswith(":ro") else ":U")]
        args.append(IMAGES[service][0])
        done = podman(*args, *(command or []))
        if done.returncode != 0:
            raise RuntimeError(f"podman run {service}: {done.stderr}")
        self.started.append(name)
        self.started_services.append(service)

    def logs(self, service: str) -> str:
        """The tail of a container's log, for a failure message."""
        done = podman("logs", f"{self.prefix}-{service}")
        return (done.stdout + done.stderr)[-5000:]

    def running(self, service: str) -> bool:
        """Whether the container is still up (one that exited will not become ready)."""
        state = podman("inspect", "-f", "{{.State.Running}}", f"{self.prefix}-{service}")
        return state.stdout.strip() == "true"

    def wait(self, service: str, ready: Callable[[], bool], timeout: float) -> None:
        """Until ``ready()``; a bounded wait that fails with the container's log."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except Exception:  # not up yet: a refused connection, a reset, an empty answer
                pass
            if not self.running(service) or time.monotonic() > deadline:
                why = "exited" if not self.running(service) else f"not ready after {timeout:.0f} s"
                raise AssertionError(f"{service} {why}; its log:\n{self.logs(service)}")
            time.sleep(1)

    def docker_api(self) -> Path:
        """Podman's Docker-compatible API on a socket of this run: what the run launcher calls.

        The daemon's and webserver's containers mount it where the compose file mounts the
        host's Docker socket; the containers it starts for runs carry ``RUN_LABEL``.
        """
        socket = self.root / "docker.sock"
        log = (self.root / "docker-api.log").open("w")
        self.api = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert time.monotonic() < deadline, "podman's API did not start"
            time.sleep(0.1)
        return socket

    def run_containers(self) -> list[dict]:
        """The containers the run launcher started for this stack's runs, as podman sees them."""
        done = podman(
            "ps", "-a", "--filter", f"label={RUN_LABEL}={self.prefix}", "--format", "json"
        )
        return json.loads(done.stdout or "[]")

    def stop(self) -> None:
        """Remove every container this run started (runs' too), newest first, and the volumes."""
        for name in [c["Id"] for c in self.run_containers()] + list(reversed(self.started)):
            podman("rm", "-f", "-t", "5", name, timeout=60)
        if self.api is not None:
            self.api.terminate()
            self.api.wait(30)
        shutil.rmtree(self.root / "volumes", ignore_errors=True)
