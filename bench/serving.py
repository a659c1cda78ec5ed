"""Serving: the service against the common template and two anchors, in one run.

Drives each server serving the trained breast_cancer champion with hey at a fixed moderate rate
and with wrk (saturated) for single-record and 100-record bodies: requests/s, p50, p99, the
ratio to the baseline (FastAPI with an INSERT per record) and to the faster anchor: what a user
would pick instead, a plain FastAPI app or BentoML's own ``@bentoml.api`` service, both serving
the same model with no logging at all.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

from sklearn.datasets import load_breast_cancer

from bench.load import bodies as request_bodies
from bench.load import drive
from bench.report import Bench, Row
from bench.store import bench_env
from harness.project import copy_moves
from harness.registries import champion_copy
from harness.servers import bentoml_server, free_port, managed_process
from mlserve_assets.settings import Settings
from serving.registry import CHALLENGER, connect, move_alias
from serving.store.predictions import PredictionStore

SERVERS = {
    "baseline": "baseline (FastAPI, INSERT per record)",
    "service": "service (durable batched log)",
    "nolog": "service (logging off)",
    "shadow": "service (a challenger in shadow)",
    "fastapi": "anchor: plain FastAPI (no log)",
    "bentoml": "anchor: BentoML @bentoml.api (no log)",
}
ANCHORS = ("fastapi", "bentoml")


def measure(
    bench: Bench, settings: Settings, seconds: int, connections: int, rate: int
) -> list[Row]:
    """The baseline, the service with and without logging and both anchors, in one run.

    Every server runs at once and each round drives them in turn, so a slow spell of the
    machine touches every server alike; each figure is the median over the rounds.
    """
    work = bench.work / "serving"
    work.mkdir()
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    bodies = request_bodies(features)

    def env(name: str) -> dict[str, str]:
        log = "false" if name == "nolog" else "true"
        db = bench.database(f"serving_{name}")
        env = {**bench_env(settings, work / name, db), "MLSERVE_LOG_PREDICTIONS": log}
        if name == "shadow":  # the first poll, at start, loads the challenger; no other competes
            env["MLSERVE_POLL_SECONDS"] = "3600"
        return env

    moderate = f"1 record at {rate}/s"
    with ExitStack() as stack:
        urls = {}
        for name, app in (
            ("baseline", "bench.baseline_app:app"),
            ("fastapi", "bench.anchor_fastapi:app"),
        ):
            port = free_port()
            uvicorn = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
            uvicorn += ["--log-level", "warning", "--no-access-log"]
            urls[name] = f"http://127.0.0.1:{port}"
            ready = f"{urls[name]}/docs"
            stack.enter_context(managed_process(uvicorn, env(name), work / f"{name}.log", ready))
        # A copy of the champion as the shadow server's challenger (its own log records the
        # move; the other servers' logs do not, so they never follow it).
        challenge(settings, bench.database("serving_shadow"))
        targets = {
            "service": "serving.service:ModelService",
            "shadow": "serving.service:ModelService",
            "nolog": "serving.service:ModelService",
            "bentoml": "bench.anchor_bentoml:Anchor",
        }
        for name, target in targets.items():
            urls[name] = stack.enter_context(
                bentoml_server(target, env(name), work / f"{name}.log")
            )
        urls = {name: urls[name] for name in SERVERS}  # the table's order
        load = (seconds, connections, rate)
        results = drive(urls, bodies, bench.rounds, load, work, bench.database_processes)
    return _rows(results, list(bodies), moderate, rate)


def challenge(settings: Settings, predictions_url: str) -> None:
    """A copy of the champion made the challenger, recorded in the log at ``predictions_url``."""
    copy_moves(settings.predictions_url, predictions_url, "breast_cancer")
    _, copy = champion_copy(settings.mlflow_tracking_uri, "breast_cancer")
    store = PredictionStore(predictions_url)
    client = connect(settings.mlflow_tracking_uri)
    move_alias(
        client,
        store,
        "breast_cancer",
        str(copy.version),
        by="bench",
        reason="shadow's cost",
        alias=CHALLENGER,
    )
    store.dispose()


def _rows(
    results: dict[str, dict[str, dict[str, float]]], bodies: list[str], moderate: str, rate: int
) -> list[Row]:
    base = results["baseline"]
    best = {load: max(results[a][load]["rps"] for a in ANCHORS) for load in base}
    goal = {"1 record": 3.0, "100 records": 10.0}
    rows = []
    for name, by_load in results.items():
        for load, r in by_load.items():
            value = f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            if r["errors"]:
                value += f", {r['errors']:.0f} non-2xx"
            x_base, x_best = r["rps"] / base[load]["rps"], r["rps"] / best[load]
            target, met = "", None
            if name == "service" and load in goal:
                target = f">= {goal[load]:g}x baseline, >= 0.9x best anchor"
                met = x_base >= goal[load] and x_best >= 0.9
            elif name == "service":
                target, met = "p99 < 20 ms", r["p99_ms"] < 20
            rows.append(
                Row("serving", f"{SERVERS[name]}, {load}", value, x_base, x_best, target, met)
            )
    on, off = results["service"], results["nolog"]
    for load in bodies:
        cost = 1 - on[load]["rps"] / off[load]["rps"]
        rows.append(
            Row(
                "serving",
                f"logging's cost, {load}",
                f"{cost:.1%} of throughput",
                target="< 10%",
                met=cost < 0.10,
            )
        )
    for load in bodies:  # the same cost in CPU, which the machine's other tenants do not move
        cpu_on, cpu_off = on[load]["cpu_ms"], off[load]["cpu_ms"]
        rows.append(
            Row(
                "serving",
                f"logging's CPU, {load}",
                f"{cpu_on:.2f} against {cpu_off:.2f} ms a request, "
                f"+{cpu_on / cpu_off - 1:.1%} (service, writer and database)",
            )
        )
    shadowed = results["shadow"][moderate]["p99_ms"] / on[moderate]["p99_ms"]
    rows.append(
        Row(
            "serving",
            f"a shadow's p99 at {rate} req/s",
            f"{shadowed:.2f}x the p99 without one",
            target="<= 1.10x",
            met=shadowed <= 1.10,
        )
    )
    at = {key: on[moderate][key] - off[moderate][key] for key in ("p50_ms", "p99_ms")}
    rows.append(
        Row(
            "serving",
            f"logging's latency at {rate} req/s",
            f"p50 {at['p50_ms']:+.1f} ms, p99 {at['p99_ms']:+.1f} ms",
        )
    )
    return rows
