"""Memory and a soak: the service's and the log writer's footprint, and whether it stays flat.

One service (logging on) takes ``--predictions`` (100k) predictions in 100-record bodies; its
worker's and its log writer's RSS are read before and after. Then, for ``soak`` seconds, single
records at a moderate fixed rate while both processes' RSS and open file descriptors are sampled
every few seconds; at the end every answered prediction must be in the log.
"""

from __future__ import annotations

import json
import threading
import time

import psutil
from sklearn.datasets import load_breast_cancer

from bench.load import hey
from bench.report import Bench, Row
from bench.store import bench_env
from harness.servers import bentoml_server, bentoml_worker
from mlserve_assets.settings import Settings
from serving.store.predictions import PredictionStore

SAMPLE_SECONDS = 5
# Growth over the soak's second half that counts as flat: allocator noise, not a leak.
FLAT_RSS = 0.05
MB = 1 << 20


def _sample(procs: dict[str, psutil.Process]) -> dict[str, float]:
    rss = {name: proc.memory_info().rss / MB for name, proc in procs.items()}
    return {**rss, "fds": sum(proc.num_fds() for proc in procs.values())}


def _logged(store: PredictionStore, expected: int, timeout: float = 60) -> int:
    """Rows in the log once the writer has caught up with ``expected`` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while (count := store.count_predictions()) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def measure(bench: Bench, settings: Settings, soak: int, rate: int, predictions: int) -> list[Row]:
    """RSS after ``predictions`` logged predictions; flat RSS and descriptors over the soak."""
    work = bench.work / "memory"
    work.mkdir()
    log = bench.database("memory")
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    hundred = json.dumps({"records": features.head(100).to_dict("records")})
    single = json.dumps({"records": features.head(1).to_dict("records")})
    env = bench_env(settings, work, log)
    store = PredictionStore(log)
    with bentoml_server("serving.service:ModelService", env, work / "service.log") as url:
        answered = 100 * hey(f"{url}/predict", hundred, work, requests=100)["answered"]
        worker = bentoml_worker(url)
        [writer] = [c for c in worker.children() if "serving.log.writer" in c.cmdline()]
        procs = {"service": worker, "writer": writer}
        start = _sample(procs)
        answered += (
            100 * hey(f"{url}/predict", hundred, work, requests=predictions // 100)["answered"]
        )
        _logged(store, answered)
        loaded = _sample(procs)
        samples: list[dict[str, float]] = []
        if soak:
            done = threading.Event()

            def sampler() -> None:
                while not done.wait(SAMPLE_SECONDS):
                    samples.append(_sample(procs))

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            run = hey(f"{url}/predict", single, work, seconds=soak, rate=rate)
            done.set()
            thread.join()
            answered += run["answered"]
        logged = _logged(store, answered)
    store.dispose()
    rows = [
        Row(
            "memory",
            f"RSS after {predictions:,} logged predictions",
            f"service {loaded['service']:.0f} MB (at start {start['service']:.0f}), "
            f"log writer {loaded['writer']:.0f} MB (at start {start['writer']:.0f})",
        )
    ]
    if samples:
        # The first half warms caches and pools; a leak shows as growth over the second half.
        half, last = samples[len(samples) // 2], samples[-1]
        for name in ("service", "writer"):
            growth = last[name] / half[name] - 1
            rows.append(
                Row(
                    "memory",
                    f"soak {soak} s at {rate} req/s: {name} RSS, middle -> end",
                    f"{half[name]:.0f} -> {last[name]:.0f} MB ({growth:+.1%})",
                    target=f"flat (< +{FLAT_RSS:.0%})",
                    met=growth < FLAT_RSS,
                )
            )
        rows.append(
            Row(
                "memory",
                f"soak {soak} s: open files of service + writer, middle -> end",
                f"{half['fds']:.0f} -> {last['fds']:.0f}",
                target="flat",
                met=last["fds"] <= half["fds"],
            )
        )
    rows.append(
        Row(
            "memory",
            "logged rows == answered predictions",
            f"{logged:,} logged, {answered:,} answered",
            target="equal",
            met=logged == answered,
        )
    )
    return rows
