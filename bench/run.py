"""Serving benchmark: the service against the common template and two anchors, in one run.

``python -m bench.run [--db sqlite|postgres] [--seconds 10] [--connections 8] [--rounds 3]``
trains the breast_cancer example into a temporary store, then drives each server with wrk for
single-record and 100-record bodies and prints requests/s, p50, p99, the ratio to the baseline
(FastAPI with an INSERT per record) and to the faster anchor: what a user would pick instead,
a plain FastAPI app or BentoML's own ``@bentoml.api`` service, both serving the same model with
no logging at all.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
from sklearn.datasets import load_breast_cancer

from bench.store import bench_settings
from harness.servers import bentoml_server, free_port, managed_process, postgres_cluster
from mlserve_assets.assembly import build_definitions

# The service runs as the production stack configures it: every route needs a key.
KEY = "bench-key"
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = [[{body}]]
"""


def _wrk(url: str, body: str, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=body, key=KEY))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _hey(url: str, body: str, seconds: int, rate: int, workdir: Path) -> dict[str, float]:
    """Latency at a fixed offered rate: wrk measures saturation, not a moderately loaded server."""
    payload = workdir / "body.json"
    payload.write_text(body)
    workers = 4
    load = ["-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    out = subprocess.run(
        [
            *["hey", *load, "-m", "POST", "-T", "application/json"],
            *["-H", f"Authorization: Bearer {KEY}", "-D", str(payload), url],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answered = sum(int(n) for n in re.findall(r"\[2\d\d\]\s+(\d+) responses", out))
    total = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": float(re.search(r"50% in ([\d.]+) secs", out).group(1)) * 1e3,
        "p99_ms": float(re.search(r"99% in ([\d.]+) secs", out).group(1)) * 1e3,
        "errors": total - answered,
    }


SERVERS = {
    "baseline": "baseline (FastAPI, INSERT per record)",
    "service": "service (durable batched log)",
    "nolog": "service (logging off)",
    "fastapi": "anchor: plain FastAPI (no log)",
    "bentoml": "anchor: BentoML @bentoml.api (no log)",
}
ANCHORS = ("fastapi", "bentoml")


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    """Measure the baseline, the service with and without logging and both anchors in one run.

    Every server runs at once and each round drives them in turn, so a slow spell of the
    machine touches every server alike; the table holds each figure's median over the rounds.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200, help="moderate load, single records")
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install {tool} (`make bench` does)")

    work = Path(tempfile.mkdtemp(prefix="mlserve-bench-"))
    settings = bench_settings(work)
    job = build_definitions(settings).resolve_job_def("train_breast_cancer")
    assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    bodies = {
        "1 record": json.dumps({"records": features.head(1).to_dict("records")}),
        "100 records": json.dumps({"records": features.head(100).to_dict("records")}),
    }

    with ExitStack() as stack:
        if args.db == "postgres":
            pg = stack.enter_context(postgres_cluster(durable=True))
            db = {name: pg.create_database(name) for name in SERVERS}
        else:
            db = {name: f"sqlite:///{work / name}.db" for name in SERVERS}

        def env(name: str) -> dict[str, str]:
            return {
                "MLSERVE_HOME": str(work / name),
                "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
                "MLSERVE_MODEL": "breast_cancer",
                "MLSERVE_PREDICTIONS_URL": db[name],
                "MLSERVE_LOG_PREDICTIONS": "false" if name == "nolog" else "true",
                "MLSERVE_POLL_SECONDS": "0",
                "MLSERVE_API_KEYS": f"predict:{KEY}",
                "MLSERVE_OPEN_SCOPES": "",
            }

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
        targets = {
            "service": "serving.service:ModelService",
            "nolog": "serving.service:ModelService",
            "bentoml": "bench.anchor_bentoml:Anchor",
        }
        for name, target in targets.items():
            urls[name] = stack.enter_context(
                bentoml_server(target, env(name), work / f"{name}.log")
            )
        urls = {name: urls[name] for name in SERVERS}  # the table's order
        moderate = f"1 record at {args.rate}/s"
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            name: {body: [] for body in [*bodies, moderate]} for name in SERVERS
        }
        for _ in range(args.rounds):
            # Moderate load first: right after a saturating run a server is still folding
            # that burst's write-ahead log into its database, and the tail would measure that.
            for name, url in urls.items():
                run = _hey(f"{url}/predict", bodies["1 record"], args.seconds, args.rate, work)
                runs[name][moderate].append(run)
            for name, url in urls.items():
                for body, payload in bodies.items():
                    run = _wrk(f"{url}/predict", payload, args.seconds, args.connections, work)
                    runs[name][body].append(run)

    results = {name: {load: _median(r) for load, r in by.items()} for name, by in runs.items()}
    base = results["baseline"]
    best = {load: max(results[a][load]["rps"] for a in ANCHORS) for load in base}
    lines = [
        f"prediction log on {args.db}; wrk -t2 -c{args.connections} -d{args.seconds}s (saturated), "
        f"hey at {args.rate} req/s (moderate); median of {args.rounds} interleaved rounds; "
        "breast_cancer champion",
        f"{'server':40} {'load':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'x baseline':>10} {'x best anchor':>13}",
    ]
    for name, by_body in results.items():
        for body, r in by_body.items():
            lines.append(
                f"{SERVERS[name]:40} {body:20} {r['rps']:9.0f} {r['p50_ms']:8.1f} "
                f"{r['p99_ms']:8.1f} {r['errors']:8.0f} {r['rps'] / base[body]['rps']:10.2f} "
                f"{r['rps'] / best[body]:13.2f}"
            )
    on, off = results["service"], results["nolog"]
    for body in bodies:
        cost = 1 - on[body]["rps"] / off[body]["rps"]
        lines.append(f"logging overhead, {body}: {cost:.1%} of throughput")
    at = {key: on[moderate][key] - off[moderate][key] for key in ("p50_ms", "p99_ms")}
    lines.append(
        f"logging's latency at {args.rate} req/s: "
        f"p50 {at['p50_ms']:+.1f} ms, p99 {at['p99_ms']:+.1f} ms"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
