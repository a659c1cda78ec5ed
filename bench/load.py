"""Load generators: wrk (saturating) and hey (a fixed rate, or a fixed number of requests).

Both post one JSON body with the bench's key and report requests/s, p50 and p99 in ms, and the
answers that were not 2xx.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from bench.report import median
from harness.project import API_KEY
from harness.servers import family

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = [[{body}]]
"""


def bodies(features: pd.DataFrame) -> dict[str, str]:
    """The request bodies every serving section sends: the first record, the first hundred."""
    return {
        "1 record": json.dumps({"records": features.head(1).to_dict("records")}),
        "100 records": json.dumps({"records": features.head(100).to_dict("records")}),
    }


def wrk(url: str, body: str, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    """Saturated: ``connections`` requests always in flight for ``seconds``."""
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=body, key=API_KEY))
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


def hey(
    url: str,
    body: str,
    workdir: Path,
    *,
    seconds: int | None = None,
    requests: int | None = None,
    rate: int | None = None,
) -> dict[str, float]:
    """For ``seconds`` or ``requests``, at a fixed offered ``rate`` or as fast as it answers.

    A fixed rate measures a moderately loaded server, which wrk (always saturating) cannot.
    """
    payload = workdir / "body.json"
    payload.write_text(body)
    workers = 4
    load = ["-c", str(workers)]
    load += ["-z", f"{seconds}s"] if seconds else ["-n", str(requests)]
    if rate:
        load += ["-q", str(rate // workers)]
    out = subprocess.run(
        [
            *["hey", *load, "-m", "POST", "-T", "application/json"],
            *["-H", f"Authorization: Bearer {API_KEY}", "-D", str(payload), url],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "50% in" not in out:
        raise RuntimeError(f"hey measured no answer from {url}:\n{out}")
    # Under a hundred answers hey prints no 99th percentile: the slowest answer stands for it.
    p99 = re.search(r"99% in ([\d.]+) secs", out) or re.search(r"Slowest:\s+([\d.]+) secs", out)
    answered = sum(int(n) for n in re.findall(r"\[2\d\d\]\s+(\d+) responses", out))
    total = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": float(re.search(r"50% in ([\d.]+) secs", out).group(1)) * 1e3,
        "p99_ms": float(p99.group(1)) * 1e3,
        "answered": answered,
        "errors": total - answered,
    }


def drive(
    urls: dict[Any, str],
    bodies: dict[str, str],
    rounds: int,
    load: tuple[int, int, int],
    workdir: Path,
    database: Callable[[], list[psutil.Process]] | None = None,
) -> dict[Any, dict[str, dict[str, float]]]:
    """Every server under every load, round after round; each figure the median over rounds.

    ``load`` is (seconds, wrk's connections, hey's rate). Each round drives every server in
    turn, so a slow spell of the machine touches them alike. Moderate load ("1 record at
    RATE/s", hey) comes first: right after a saturating run a server is still folding that
    burst's write-ahead log into its database, and the tail would measure that. Given the
    ``database``'s processes, a saturated run also reports the CPU the server (found by its
    ``--port``) and the database spent per request (``cpu_ms``).
    """
    seconds, connections, rate = load
    moderate = f"1 record at {rate}/s"
    runs: dict[Any, dict[str, list[dict[str, float]]]] = {
        key: {name: [] for name in [*bodies, moderate]} for key in urls
    }
    for _ in range(rounds):
        for key, url in urls.items():
            single = bodies["1 record"]
            runs[key][moderate].append(
                hey(f"{url}/predict", single, workdir, seconds=seconds, rate=rate)
            )
        for key, url in urls.items():
            for body, payload in bodies.items():
                before = None if database is None else cpu_seconds(url, database)
                run = wrk(f"{url}/predict", payload, seconds, connections, workdir)
                if database is not None:
                    after = cpu_seconds(url, database)
                    spent = sum(t - before.get(pid, 0.0) for pid, t in after.items())
                    run["cpu_ms"] = 1000 * spent / max(1.0, run["rps"] * seconds)
                runs[key][body].append(run)
    return {
        key: {name: {k: median([r[k] for r in rs]) for k in rs[0]} for name, rs in by.items()}
        for key, by in runs.items()
    }


def serving_processes(url: str) -> list[psutil.Process]:
    """The server started with ``--port`` of ``url``'s port, and everything it started.

    Found by its command line, not its socket: a `bentoml serve` passes the socket to its
    workers, and the socket's one holder psutil names can be any of them.
    """
    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "--port" in cmdline[:-1] and cmdline[cmdline.index("--port") + 1] == port:
            return family(proc.pid)
    raise LookupError(f"no server started with --port {port}")


def cpu_seconds(url: str, database: Callable[[], list[psutil.Process]]) -> dict[int, float]:
    """The user and system CPU so far of each process of the server and the database, by pid.

    Read beside throughput because it does not move with the machine's other tenants: on this
    shared machine throughput swung by ten points between rounds of the same code. By pid, read
    before and after a run: a database backend that ends or starts meanwhile would otherwise
    count as CPU given back or spent before the run.
    """
    spent = {}
    for proc in [*serving_processes(url), *database()]:
        with suppress(psutil.Error):
            times = proc.cpu_times()
            spent[proc.pid] = times.user + times.system
    return spent
