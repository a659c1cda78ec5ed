"""Serving benchmark: the service against the common template, measured side by side in one run.

``python -m bench.run [--db sqlite|postgres] [--seconds 10] [--connections 8]`` trains the
breast_cancer example into a temporary store, then drives each server with wrk for single-record
and 100-record bodies and prints requests/s, p50, p99 and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from sklearn.datasets import load_breast_cancer

from mlserve_assets.settings import PROJECT_ROOT, Settings
from tests.conftest import EXAMPLES, train
from tests.services import bentoml_server, free_port, postgres_cluster, stop_group, wait_until_ready

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""


def _wrk(url: str, body: str, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=body))
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


def main() -> None:
    """Measure baseline, service and service without logging in one run; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk (the Makefile's bench target does)")

    work = Path(tempfile.mkdtemp(prefix="mlserve-bench-"))
    settings = Settings(
        home=work / "home",
        mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        artifact_location=(work / "artifacts").as_uri(),
        spec_paths=EXAMPLES,
        predictions_url=f"sqlite:///{work / 'training-feedback.db'}",
        bentoml_home=work / "bentoml",
    )
    assert train(settings, EXAMPLES, "train_breast_cancer").success
    features = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    bodies = {
        "1 record": json.dumps({"records": features.head(1).to_dict("records")}),
        "100 records": json.dumps({"records": features.head(100).to_dict("records")}),
    }

    with ExitStack() as stack:
        if args.db == "postgres":
            pg = stack.enter_context(postgres_cluster())
            db = {name: pg.create_database(name) for name in ("baseline", "service", "nolog")}
        else:
            db = {name: f"sqlite:///{work / name}.db" for name in ("baseline", "service", "nolog")}

        def env(name: str, log: bool = True) -> dict[str, str]:
            return {
                "MLSERVE_HOME": str(work / name),
                "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
                "MLSERVE_MODEL": "breast_cancer",
                "MLSERVE_PREDICTIONS_URL": db[name],
                "MLSERVE_LOG_PREDICTIONS": "true" if log else "false",
                "MLSERVE_POLL_SECONDS": "0",
            }

        results: dict[str, dict[str, dict[str, float]]] = {}
        port = free_port()
        log = work / "baseline.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.baseline_app:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=PROJECT_ROOT,
                env={**os.environ, **env("baseline")},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/docs", proc, log)
            results["baseline (FastAPI, INSERT per record)"] = {
                k: _wrk(f"http://127.0.0.1:{port}/predict", b, args.seconds, args.connections, work)
                for k, b in bodies.items()
            }
        finally:
            stop_group(proc)
        for label, name, logging_on in (
            ("service (durable batched log)", "service", True),
            ("service (logging off)", "nolog", False),
        ):
            with bentoml_server(
                "serving.service:ModelService", env(name, logging_on), work / f"{name}.log"
            ) as url:
                results[label] = {
                    k: _wrk(f"{url}/predict", b, args.seconds, args.connections, work)
                    for k, b in bodies.items()
                }

    base = results["baseline (FastAPI, INSERT per record)"]
    lines = [
        f"prediction log on {args.db}; wrk -t2 -c{args.connections} -d{args.seconds}s; "
        "breast_cancer champion",
        f"{'server':40} {'body':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'x baseline':>10}",
    ]
    for label, by_body in results.items():
        for body, r in by_body.items():
            lines.append(
                f"{label:40} {body:12} {r['rps']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                f"{r['errors']:8d} {r['rps'] / base[body]['rps']:10.2f}"
            )
    on, off = results["service (durable batched log)"], results["service (logging off)"]
    for body in bodies:
        cost = 1 - on[body]["rps"] / off[body]["rps"]
        lines.append(f"logging overhead, {body}: {cost:.1%} of throughput")
    sys.stdout.write("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
