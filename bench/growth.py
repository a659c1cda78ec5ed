"""Growth benchmark: what reads the prediction log, timed as the log grows.

``python -m bench.growth [--db sqlite|postgres] [--sizes 10000,100000,1000000] [--repeat 3]``
trains breast_cancer (its spec sets a live-metric rule, so the sensor reads the champion's
labelled outcomes), then for each size fills the log with that many predictions of the champion,
a tenth of them labelled, and times the real retrain sensor's tick and the ``predictions`` and
``feedback`` assets (medians of ``--repeat``). The table shows how each grows with the log.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import dagster as dg
from sklearn.datasets import load_breast_cancer

from bench.store import bench_settings
from harness.servers import postgres_cluster
from mlserve_assets.assembly import build_definitions
from serving.log_schema import PredictionRow, feedback
from serving.prediction_store import PredictionStore

MODEL = "breast_cancer"
CHUNK = 20_000


def fill(store: PredictionStore, start: int, stop: int) -> None:
    """Predictions ``start..stop`` of version 1, every tenth labelled a second later."""
    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target").to_dict("records")
    truth = frame["target"].tolist()
    now = time.time()
    for first in range(start, stop, CHUNK):
        ids = [uuid.uuid4().hex for _ in range(first, min(first + CHUNK, stop))]
        rows = [
            PredictionRow(pid, now, MODEL, "1", features[n % len(features)], truth[n % 569])
            for n, pid in zip(range(first, first + len(ids)), ids, strict=True)
        ]
        store.insert_predictions(rows)
        labels = [
            {
                "prediction_id": pid,
                "ground_truth": truth[n % 569],
                "received_at": now + 1,
                "model_name": MODEL,
                "model_version": "1",
            }
            for n, pid in enumerate(ids, first)
            if n % 10 == 0
        ]
        with store.engine.begin() as conn:
            conn.execute(feedback.insert(), labels)


def main() -> None:
    """Fill, time, grow, time again; print one row per size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mlserve-growth-"))
    with ExitStack() as stack:
        settings = bench_settings(work)
        if args.db == "postgres":
            pg = stack.enter_context(postgres_cluster(durable=True))
            settings = replace(settings, predictions_url=pg.create_database("log"))
        defs = build_definitions(settings)
        job = defs.resolve_job_def(f"train_{MODEL}")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        assert job.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config=quiet
        ).success
        store = PredictionStore(settings.predictions_url)
        stack.callback(store.dispose)
        sensor = next(s for s in defs.sensors if s.name == f"retrain_{MODEL}")
        resources = defs.get_repository_def().get_top_level_resources()
        observed = [dg.AssetKey([MODEL, "predictions"]), dg.AssetKey([MODEL, "feedback"])]
        lines = [
            f"log on {args.db}; breast_cancer, a tenth labelled; median of {args.repeat}",
            f"{'predictions':>12} {'sensor tick s':>14} {'predictions asset s':>20} "
            f"{'feedback asset s':>17}",
        ]
        filled = 0
        for size in sizes:
            fill(store, filled, size)
            filled = size
            ticks, assets = [], {key: [] for key in observed}
            for _ in range(args.repeat):
                with dg.build_sensor_context(
                    instance=dg.DagsterInstance.ephemeral(), resources=resources
                ) as context:
                    started = time.perf_counter()
                    sensor.evaluate_tick(context)
                    ticks.append(time.perf_counter() - started)
                result = job.execute_in_process(
                    instance=dg.DagsterInstance.ephemeral(),
                    asset_selection=observed,
                    run_config=quiet,
                )
                for event in result.all_events:
                    if event.event_type_value == "STEP_SUCCESS":
                        key = dg.AssetKey([MODEL, event.step_key.partition("__")[2]])
                        assets[key].append(event.event_specific_data.duration_ms / 1000)
            row = [statistics.median(ticks), *(statistics.median(assets[k]) for k in observed)]
            lines.append(f"{size:>12,} {row[0]:>14.3f} {row[1]:>20.3f} {row[2]:>17.3f}")
            sys.stdout.write(lines[-1] + "\n")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
