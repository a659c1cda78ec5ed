"""Serving replicas behind haproxy, as the production stack runs them, for the tests and the bench.

Each replica is a `bentoml serve` of the service on a port of its own, with a BentoML home of its
own (BentoML wipes and refills ``$BENTOML_HOME/prometheus_multiproc_dir`` at start, so replicas
sharing one would count each other's requests); they share the prediction log and the registry
their environment names. The balancer runs the production stack's own configuration
(``infra/haproxy/haproxy.cfg``), its addresses given as the compose file gives them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.servers import (
    family,
    free_port,
    managed_process,
    signal_groups,
    wait_gone,
    wait_until_ready,
)
from mlserve_assets.settings import PROJECT_ROOT

HAPROXY_CONFIG = PROJECT_ROOT / "infra" / "haproxy" / "haproxy.cfg"
SLOTS = 3
"""Replicas the balancer's configuration names; fewer leave a slot on a port nothing serves."""

UNSERVED = "127.0.0.1:1"
"""A slot's address when it has no replica: its health check fails, so it takes no traffic."""


@dataclass
class Replicas:
    """The balancer's URL, each replica's own URL and its process (the group's leader)."""

    balancer: str
    urls: list[str]
    processes: list[subprocess.Popen]

    def kill(self, index: int) -> None:
        """SIGKILL replica ``index`` and everything it started: no shutdown hook runs.

        Its worker too, which BentoML runs in a session of its own: killed with the server's
        group alone, it kept answering on the inherited socket (a kill that lost nothing).
        Returns once every process of it is gone, so its port refuses: before that, a
        connection could still land in the dying listener's backlog and be reset.
        """
        process = self.processes[index]
        procs = family(process.pid)
        signal_groups(procs, signal.SIGKILL)
        assert not wait_gone(procs, 10), f"replica {index} outlived SIGKILL"
        process.wait(10)


@contextmanager
def replicas(env: dict[str, str], folder: Path, count: int = SLOTS) -> Iterator[Replicas]:
    """``count`` replicas of the service configured by ``env``, started at once, and haproxy."""
    assert 1 <= count <= SLOTS, f"the balancer's configuration has {SLOTS} slots"
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        processes = []
        for i, port in enumerate(ports):
            home = folder / f"bentoml-{i}"
            home.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:ModelService"]
            cmd += ["--host", "127.0.0.1", "--port", str(port)]
            log = folder / f"replica-{i}.log"
            replica_env = env | {"BENTOML_HOME": str(home)}
            processes.append(stack.enter_context(managed_process(cmd, replica_env, log)))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for i, (url, process) in enumerate(zip(urls, processes, strict=True)):
            wait_until_ready(f"{url}/readyz", process, folder / f"replica-{i}.log")
        listen = free_port()
        slots = [f"127.0.0.1:{port}" for port in ports] + [UNSERVED] * (SLOTS - count)
        balancer_env = {"LISTEN": f"127.0.0.1:{listen}"}
        balancer_env |= {f"REPLICA_{i + 1}": address for i, address in enumerate(slots)}
        balancer = f"http://127.0.0.1:{listen}"
        stack.enter_context(
            managed_process(
                ["haproxy", "-db", "-f", str(HAPROXY_CONFIG)],
                balancer_env,
                folder / "haproxy.log",
                f"{balancer}/readyz",
            )
        )
        yield Replicas(balancer, urls, processes)
