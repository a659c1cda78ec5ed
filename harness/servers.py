"""Real servers for the tests and the benchmark: throw-away PostgreSQL, `bentoml serve`, S3, MLflow.

Every long-lived process starts in its own process group and is ended as a group (TERM, then KILL):
servers that fork workers otherwise outlive the test run and hang CI.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from mlserve_assets.settings import PROJECT_ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")


# A child reads the stores it is given: MLflow URIs of the shell that started the tests would
# point it at another store.
MLFLOW_PROCESS_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment for a child, minus MLflow's process-wide URIs, plus ``env``."""
    inherited = {k: v for k, v in os.environ.items() if k not in MLFLOW_PROCESS_URIS}
    return {**inherited, **env}


# The OS hands out ports from its ephemeral range (``ip_local_port_range``), and a port it handed
# to us but nobody has bound yet it may hand out again: `bentoml serve` binds its HTTP port first,
# then circus binds a control port it reserved the same way, and once they were the same port (CI,
# 2026-12-05). Our servers therefore take ports below that range, which the OS never picks.
LOWEST_PORT = 20000


def _ephemeral_low() -> int:
    """The first port the OS may pick by itself (32768 when the kernel does not say)."""
    with suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def _our_ports() -> Iterator[int]:
    """This process's share of the ports below the ephemeral range, from a random start.

    Each pytest-xdist worker has a slice of its own, so two workers never offer the same port;
    inside a slice ports go round in order, so one process never offers a port twice before it has
    offered every other.
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    span = (_ephemeral_low() - LOWEST_PORT) // workers
    first = LOWEST_PORT + worker * span
    start = random.randrange(span)
    while True:
        yield from range(first + start, first + span)
        yield from range(first, first + start)


_PORTS = _our_ports()


def _unbound(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port nothing listens on now, and one the OS will not hand to anyone by itself."""
    return next(port for port in _PORTS if _unbound(port))


def family(pid: int) -> list[psutil.Process]:
    """``pid`` and everything it started, whatever session each runs in.

    BentoML starts each worker in a session of its own: signalling the server's group alone
    leaves a worker that still holds the listening socket and answers.
    """
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def signal_groups(procs: list[psutil.Process], signum: signal.Signals) -> None:
    """``signum`` to the process group of each of ``procs`` that still runs."""
    groups = set()
    for proc in procs:
        with suppress(ProcessLookupError, psutil.NoSuchProcess):
            groups.add(os.getpgid(proc.pid))
    for group in groups:
        with suppress(ProcessLookupError):
            os.killpg(group, signum)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` runs any more; return those still running at ``timeout``.

    A zombie counts as gone: it holds no socket, and whoever reaps it (not always this
    process: a worker's parent may die first) need not have done so yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [proc for proc in procs if _running(proc)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """End a process and everything it started: TERM, and KILL what is left after ``timeout``.

    Every process of the family gets the time to finish (a log writer commits what it holds
    when its service closes it); only what outlives it is killed.
    """
    if proc.poll() is not None:
        return
    procs = family(proc.pid)
    signal_groups(procs, signal.SIGTERM)
    signal_groups(wait_gone(procs, timeout), signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)


def wait_until_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log's tail, if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log.read_text()[-4000:]}")


class Postgres:
    """A PostgreSQL cluster in a temporary folder, run as the `postgres` user (it refuses root)."""

    def __init__(self, durable: bool = False) -> None:
        # Tests trade fsync for speed; a benchmark of the prediction log must pay for it.
        self.durable = durable
        # Outside pytest's tmp_path: its parents are private to root, and postgres must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="mlserve-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        )

    def _as_postgres(self, cmd: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server on its port, listening on 127.0.0.1 only."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off"
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut)."""
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        )

    def processes(self) -> list[psutil.Process]:
        """The server and every backend it runs (the postmaster's pid is its file's first line)."""
        return family(int((self.data / "postmaster.pid").read_text().split()[0]))

    def create_database(self, name: str) -> str:
        """Create a database; returns its SQLAlchemy URL."""
        self._as_postgres(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ]
        )
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_cluster(durable: bool = False) -> Iterator[Postgres]:
    """A started cluster, stopped and deleted afterwards."""
    cluster = Postgres(durable)
    cluster.start()
    try:
        yield cluster
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


@contextmanager
def bentoml_server(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`bentoml serve TARGET` on a free port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "bentoml", "serve", target, "--port", str(port)]
    with managed_process([*cmd, "--host", "127.0.0.1"], env, log, f"{base}/readyz"):
        yield base


def bentoml_worker(url: str) -> psutil.Process:
    """The worker process of the ``bentoml serve`` listening on ``url``'s port.

    It is what serves, and whose memory the soak and the memory test watch.
    """
    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "bentoml" in " ".join(cmdline) and "--port" in cmdline and port in cmdline:
            [worker] = [c for c in proc.children() if "worker" in " ".join(c.cmdline())]
            return worker
    raise LookupError(f"no bentoml server on port {port}")


@contextmanager
def dagster_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the project's workspace: it runs the sensors and launches runs."""
    daemon = str(Path(sys.executable).parent / "dagster-daemon")
    with managed_process([daemon, "run", "-w", "workspace.yaml"], env, log) as proc:
        yield proc


@contextmanager
def managed_process(
    cmd: list[str], env: dict[str, str], log: Path, ready_url: str | None = None
) -> Iterator[subprocess.Popen]:
    """``cmd`` in its own process group, yielded once ``ready_url`` answers, ended as a group."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=child_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if ready_url is not None:
            wait_until_ready(ready_url, proc, log)
        yield proc
    finally:
        stop_group(proc)


S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    """moto_server's address, and its process so a test can take it away."""

    url: str
    process: subprocess.Popen


@contextmanager
def s3_server(log: Path, bucket: str) -> Iterator[S3Server]:
    """A real S3-compatible HTTP server (moto_server, as a process) with ``bucket`` created."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with managed_process(cmd, {}, log, f"{url}/moto-api/") as proc:
        s3_client(url).create_bucket(Bucket=bucket)
        yield S3Server(url, proc)


def s3_client(url: str):
    """A boto3 S3 client for the server at ``url`` with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_KEYS["AWS_DEFAULT_REGION"],
    )


@contextmanager
def mlflow_server(backend: str, s3_url: str, bucket: str, log: Path) -> Iterator[str]:
    """An MLflow tracking server on ``backend`` that proxies artifacts to the S3 bucket."""
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        f"s3://{bucket}",
        "--workers",
        "1",
    ]
    # As in compose: no job runner (three idle huey consumers, 13% of a core each, measured).
    env = {
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **S3_KEYS,
    }
    with managed_process(cmd, env, log, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"
