"""``python -m bench``: every benchmark in one run, printed as one table.

``make bench`` runs it; ``make bench BENCH_ARGS="--db postgres"`` puts every prediction log on a
local PostgreSQL cluster with fsync on (and runs the loop on the production services). Sections:
serving (the service against the common template and two anchors), families (three
champion families by scikit-learn and by their ONNX twin), replicas (1-3 replicas behind
haproxy, the knee), memory (RSS after 100k
predictions, and a ``--soak``), growth (what reads the log at 10k-1M rows), training (spec ->
champion against a hand-written script), selection (retraining's choice and gate over draws of
the prediction ids) and the loop (threshold -> new version answering).
Figures vary ±20% between runs on a shared 2-core machine: read the ratios within one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import cache
from pathlib import Path

from bench import (
    families,
    growth,
    loop,
    memory,
    replicas,
    retraining,
    selection,
    serving,
    training,
)
from bench.report import Bench, Row, table
from bench.store import bench_settings
from harness.project import train
from harness.servers import postgres_cluster

SECTIONS = (
    "serving",
    "families",
    "replicas",
    "memory",
    "growth",
    "training",
    "retraining",
    "selection",
    "loop",
)
SERVED = ("serving", "families", "replicas", "memory", "growth")


def main() -> None:
    """Run the chosen sections in order; print each section's rows as it ends, then the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    parser.add_argument("--seconds", type=int, default=10, help="per serving load run")
    parser.add_argument("--connections", type=int, default=8, help="wrk's, saturated")
    parser.add_argument("--rate", type=int, default=200, help="moderate load, single records")
    parser.add_argument("--soak", type=int, default=120, help="seconds at --rate (0: none)")
    parser.add_argument(
        "--predictions", type=int, default=100_000, help="memory's logged predictions"
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="growth's log sizes")
    parser.add_argument("--base-rows", type=int, default=10000, help="retraining, loop: rows")
    parser.add_argument("--labels", default="1000,3000,10000", help="retraining's counts of labels")
    parser.add_argument("--draws", type=int, default=100, help="selection's draws of ids")
    parser.add_argument(
        "--families", default=",".join(families.FAMILIES), help="families' champion families"
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    chosen = args.only.split(",")
    if unknown := set(chosen) - set(SECTIONS):
        sys.exit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install {tool} (`make bench` does)")

    work = Path(tempfile.mkdtemp(prefix="mlserve-bench-"))
    rows: list[Row] = []
    with ExitStack() as stack:
        if args.db == "postgres":
            pg = stack.enter_context(postgres_cluster(durable=True))
            database, database_processes = cache(pg.create_database), pg.processes
        else:

            def database(name: str) -> str:
                return f"sqlite:///{work / name}.db"

            database_processes = list
        bench = Bench(args.db, database, work, args.rounds, database_processes)
        settings = bench_settings(work)
        if set(chosen) & set(SERVED):  # the model they serve (by the service, not a bento)
            job = "train_breast_cancer"
            assert train(settings, settings.spec_paths, job, bentos=()).success
        runs = {
            "serving": lambda: serving.measure(
                bench, settings, args.seconds, args.connections, args.rate
            ),
            "families": lambda: families.measure(
                bench,
                settings,
                args.seconds,
                args.connections,
                args.rate,
                args.families.split(","),
            ),
            "replicas": lambda: replicas.measure(
                bench, settings, args.seconds, args.connections, args.rate
            ),
            "memory": lambda: memory.measure(
                bench, settings, args.soak, args.rate, args.predictions
            ),
            "growth": lambda: growth.measure(
                bench, settings, [int(s) for s in args.sizes.split(",")]
            ),
            "training": lambda: training.measure(bench),
            "retraining": lambda: retraining.measure(
                args.base_rows, [int(n) for n in args.labels.split(",")]
            ),
            "selection": lambda: selection.measure(args.draws),
            "loop": lambda: loop.measure(bench, args.base_rows),
        }
        for section in SECTIONS:
            if section in chosen:
                started = time.monotonic()
                section_rows = runs[section]()
                rows += section_rows
                sys.stderr.write(
                    f"{section} ({time.monotonic() - started:.0f} s)\n{table(section_rows)}\n\n"
                )
    sys.stdout.write(
        f"prediction logs on {args.db}; medians of {args.rounds} interleaved rounds; "
        f"wrk -t2 -c{args.connections} -d{args.seconds}s saturated, hey at {args.rate} req/s\n\n"
        f"{table(rows)}\n"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
