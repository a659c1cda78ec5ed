"""What a request leaves in the service's memory is released: RSS stays flat under steady load.

BentoML 1.4 keeps each request's timer, and with it the request's tracing context (about 5 KB),
until its traffic timeout expires, so the memory held is that timeout times the request rate.
The service sizes the timeout from MLSERVE_REQUEST_TIMEOUT (a backstop 5 s after it); at the
300 s it once had, 9,000 requests after the warm-up held 45 MB (6,000, this test's, about 30).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
from sklearn.datasets import load_diabetes

from harness.project import API_KEY, service_env
from harness.servers import bentoml_server

BURSTS = 2
REQUESTS = 3000
FLAT_MB = 15


def _worker(url: str) -> psutil.Process:
    """The worker process of the server listening on ``url``'s port."""
    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "bentoml" in " ".join(cmdline) and "--port" in cmdline and port in cmdline:
            [worker] = [c for c in proc.children() if "worker" in " ".join(c.cmdline())]
            return worker
    raise LookupError(f"no bentoml server on port {port}")


def _burst(url: str, body: Path) -> None:
    command = ["hey", "-n", str(REQUESTS), "-c", "4", "-m", "POST", "-T", "application/json"]
    command += ["-H", f"Authorization: Bearer {API_KEY}", "-D", str(body), f"{url}/predict"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert f"[200]\t{REQUESTS} responses" in out, out


def test_steady_load_leaves_the_service_rss_flat(trained, tmp_path):
    record = load_diabetes(as_frame=True).frame.drop(columns="target").iloc[0].to_dict()
    body = tmp_path / "body.json"
    body.write_text(f'{{"records": [{record!r}]}}'.replace("'", '"'))
    env = service_env(trained, "diabetes", f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "s.db")
    env |= {"MLSERVE_REQUEST_TIMEOUT": "1", "MLSERVE_POLL_SECONDS": "0"}
    with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
        worker = _worker(url)
        _burst(url, body)  # warm: pools, caches, the allocator's arenas
        time.sleep(7)  # past the backstop (1 + 5 s): the warm-up's timers have fired
        warm = worker.memory_info().rss
        for _ in range(BURSTS):
            _burst(url, body)
            time.sleep(7)
        grown = (worker.memory_info().rss - warm) / (1 << 20)
    assert grown < FLAT_MB, f"RSS grew {grown:.1f} MB over {BURSTS * REQUESTS} requests"
