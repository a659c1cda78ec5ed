"""What a request leaves in the service's memory is released: RSS stays flat under steady load.

BentoML 1.4 keeps each request's timer, and with it the request's tracing context (about 5 KB),
until its traffic timeout expires, so the memory held is that timeout times the request rate.
The service sizes the timeout from MLSERVE_REQUEST_TIMEOUT (a backstop 5 s after it); at the
300 s it once had, 9,000 requests after the warm-up held 45 MB (6,000, this test's, about 30).
"""

from __future__ import annotations

import json
import time

from sklearn.datasets import load_diabetes

from bench.load import hey
from harness.project import service_env
from harness.servers import bentoml_server, bentoml_worker

BURSTS = 2
REQUESTS = 3000
FLAT_MB = 15


def test_steady_load_leaves_the_service_rss_flat(trained, tmp_path):
    record = load_diabetes(as_frame=True).frame.drop(columns="target").iloc[0].to_dict()
    body_text = json.dumps({"records": [record]})
    env = service_env(trained, "diabetes", f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "s.db")
    env |= {"MLSERVE_REQUEST_TIMEOUT": "1", "MLSERVE_POLL_SECONDS": "0"}
    with bentoml_server("serving.service:ModelService", env, tmp_path / "server.log") as url:
        worker = bentoml_worker(url)
        hey(f"{url}/predict", body_text, tmp_path, requests=REQUESTS)  # warm: pools, caches, arenas
        time.sleep(7)  # past the backstop (1 + 5 s): the warm-up's timers have fired
        warm = worker.memory_info().rss
        for _ in range(BURSTS):
            run = hey(f"{url}/predict", body_text, tmp_path, requests=REQUESTS)
            assert run["answered"] == REQUESTS, run
            time.sleep(7)
        grown = (worker.memory_info().rss - warm) / (1 << 20)
    assert grown < FLAT_MB, f"RSS grew {grown:.1f} MB over {BURSTS * REQUESTS} requests"
