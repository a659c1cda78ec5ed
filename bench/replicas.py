"""Replicas: throughput of 1, 2 and 3 serving replicas behind haproxy, sharing one prediction log.

Each configuration is the production stack's balancer (``infra/haproxy/haproxy.cfg``) in front of
replicas of the service (``harness.replicas``); one replica reached directly, without the
balancer, is the anchor the balancer's cost is read against. The knee is the first replica count
that adds less than 10% to the one before it: past it, more replicas on this machine only share
the same cores. Capacity guidance (docs/capacity.md) is read from these rows.
"""

from __future__ import annotations

from contextlib import ExitStack

from sklearn.datasets import load_breast_cancer

from bench.load import bodies as request_bodies
from bench.load import drive
from bench.report import Bench, Row
from bench.store import bench_env
from harness.replicas import SLOTS, replicas
from mlserve_assets.settings import Settings

GAIN = 0.10
"""A replica that adds less than this share of throughput is past the knee."""


def measure(
    bench: Bench, settings: Settings, seconds: int, connections: int, rate: int
) -> list[Row]:
    """Every configuration running at once, driven in turn each round (``bench.load.drive``)."""
    work = bench.work / "replicas"
    work.mkdir()
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    bodies = request_bodies(features)
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        for count in range(1, SLOTS + 1):
            env = bench_env(settings, work / f"home-{count}", bench.database(f"replicas_{count}"))
            running = stack.enter_context(replicas(env, work / f"x{count}", count))
            urls[f"{count}"] = running.balancer
            if count == 1:
                urls["direct"] = running.urls[0]
        results = drive(urls, bodies, bench.rounds, (seconds, connections * 2, rate), work)
    return _rows(results, [*bodies, f"1 record at {rate}/s"])


def _rows(results: dict[str, dict[str, dict[str, float]]], loads: list[str]) -> list[Row]:
    rows = []
    for load in loads:
        one, direct = results["1"][load]["rps"], results["direct"][load]["rps"]
        r = results["direct"][load]
        rows.append(
            Row(
                "replicas",
                f"one replica, no balancer, {load}",
                f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms",
            )
        )
        knee = None
        for count in range(1, SLOTS + 1):
            r = results[f"{count}"][load]
            value = f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
            if r["errors"]:
                value += f", {r['errors']:.0f} non-2xx"
            if count > 1 and knee is None:
                before = results[f"{count - 1}"][load]["rps"]
                if r["rps"] < before * (1 + GAIN):
                    knee = count - 1
            rows.append(
                Row(
                    "replicas",
                    f"{count} behind haproxy, {load}",
                    value,
                    r["rps"] / one,
                    r["rps"] / direct,
                )
            )
        if not load.endswith("/s"):  # at a fixed rate every configuration answers that rate
            stated = f"{knee} replica(s)" if knee else f"not reached by {SLOTS}"
            rows.append(Row("replicas", f"the knee, {load}", stated))
    return rows
