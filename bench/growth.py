"""Growth: what reads the prediction log, and the feedback endpoint, timed as the log grows.

With the breast_cancer champion trained (its spec sets a live-metric rule, so the sensor reads
the champion's labelled outcomes), the log is filled to each size with predictions of the
champion, a tenth of them labelled, and at each size the real retrain sensor's tick and the
``predictions`` and ``feedback`` assets are timed (medians of the rounds), and a running service
takes sequential labels for unlabelled predictions (p50 and p99 of each request's latency). Each
row's ratio is to the same figure at the smallest size.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import dagster as dg
import httpx
from sklearn.datasets import load_breast_cancer

from bench.report import Bench, Row, median
from bench.store import bench_env
from harness.project import AUTH, copy_moves
from harness.servers import bentoml_server
from mlserve_assets.assembly import build_definitions
from mlserve_assets.settings import Settings
from serving.store.ids import new_batch_id
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionBatch, feedback

MODEL = "breast_cancer"
CHUNK = 20_000
LABELS_PER_SIZE = 500  # sequential feedback requests timed at each size
OBSERVED = {"predictions asset": "predictions", "feedback asset": "feedback"}
TARGETS = {"sensor tick": 1.0, "predictions asset": 10.0, "feedback asset": 10.0}
# The feedback endpoint's p99 at the largest size against the smallest: "unchanged", with room
# for a shared 2-core machine's noise.
FEEDBACK_P99_GROWTH = 1.25


def fill(store: PredictionStore, start: int, stop: int) -> list[tuple[str, int]]:
    """Predictions ``start..stop`` of version 1, 100-record requests, every tenth labelled.

    Returns unlabelled predictions (id, true label) for the feedback endpoint to label.
    """
    frame = load_breast_cancer(as_frame=True).frame
    features = frame.drop(columns="target").to_dict("records")
    truth = frame["target"].tolist()
    now = time.time()
    unlabelled: list[tuple[str, int]] = []
    for first in range(start, stop, CHUNK):
        batches = [
            PredictionBatch(
                new_batch_id(),
                now,
                MODEL,
                "1",
                [features[n % 569] for n in range(at, min(at + 100, stop))],
                [truth[n % 569] for n in range(at, min(at + 100, stop))],
            )
            for at in range(first, min(first + CHUNK, stop), 100)
        ]
        store.insert_batches(batches)
        rows = [row for batch in batches for row in batch.rows()]
        ids = [row.prediction_id for row in rows]
        labels = [
            {
                "prediction_id": row.prediction_id,
                "ground_truth": row.prediction,
                "received_at": now + 1,
                "model_name": MODEL,
                "model_version": "1",
                "predicted_at": now,
                "features": row.features,
                "prediction": row.prediction,
            }
            for n, row in enumerate(rows, first)
            if n % 10 == 0
        ]
        with store.engine.begin() as conn:
            conn.execute(feedback.insert(), labels)
        unlabelled += [(pid, truth[n % 569]) for n, pid in enumerate(ids, first) if n % 10]
    return unlabelled[: 3 * LABELS_PER_SIZE]


def _label_latencies(url: str, unlabelled: list[tuple[str, int]]) -> list[float]:
    """Milliseconds of each of ``LABELS_PER_SIZE`` sequential POST /feedback requests."""
    took = []
    with httpx.Client(headers=AUTH, timeout=30) as client:
        for pid, truth in unlabelled[:LABELS_PER_SIZE]:
            started = time.perf_counter()
            answer = client.post(
                f"{url}/feedback", json={"prediction_id": pid, "ground_truth": truth}
            )
            took.append((time.perf_counter() - started) * 1e3)
            assert answer.status_code == 201, answer.text
    return took


def measure(bench: Bench, settings: Settings, sizes: list[int]) -> list[Row]:
    """Fill, time, grow, time again."""
    copy_moves(settings.predictions_url, bench.database("growth"), MODEL)  # what may serve
    settings = replace(settings, predictions_url=bench.database("growth"))
    defs = build_definitions(settings)
    # The two observing assets alone: a job run with an asset selection adds their checks, and
    # the drift check's reference (validated_dataset) is never stored here.
    keys = {dg.AssetKey([MODEL, stage]) for stage in OBSERVED.values()}
    observing = [a for a in defs.assets if a.key in keys]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    sensor = next(s for s in defs.sensors if s.name == f"retrain_{MODEL}")
    resources = defs.get_repository_def().get_top_level_resources()
    env = bench_env(settings, bench.work / "growth", settings.predictions_url)
    figures: dict[str, dict[int, float]] = {}
    feedback_p50: dict[int, float] = {}
    log = bench.work / "growth-service.log"
    with bentoml_server("serving.service:ModelService", env, log) as url:
        filled = 0
        for size in sizes:
            unlabelled = fill(store, filled, size)
            filled = size
            times: dict[str, list[float]] = {"sensor tick": [], **{k: [] for k in OBSERVED}}
            for _ in range(bench.rounds):
                with dg.build_sensor_context(
                    instance=dg.DagsterInstance.ephemeral(), resources=resources
                ) as context:
                    started = time.perf_counter()
                    sensor.evaluate_tick(context)
                    times["sensor tick"].append(time.perf_counter() - started)
                result = dg.materialize(
                    observing,
                    instance=dg.DagsterInstance.ephemeral(),
                    resources=resources,
                    run_config=quiet,
                )
                for event in result.all_events:
                    if event.event_type_value == "STEP_SUCCESS":
                        asset = event.step_key.partition("__")[2]
                        name = next(k for k, a in OBSERVED.items() if a == asset)
                        times[name].append(event.event_specific_data.duration_ms / 1000)
            for name, values in times.items():
                figures.setdefault(name, {})[size] = median(values)
            latencies = _label_latencies(url, unlabelled)
            figures.setdefault("feedback endpoint p99", {})[size] = statistics.quantiles(
                latencies, n=100
            )[98]
            feedback_p50[size] = median(latencies)
    store.dispose()
    return _rows(figures, feedback_p50, sizes)


def _rows(
    figures: dict[str, dict[int, float]], feedback_p50: dict[int, float], sizes: list[int]
) -> list[Row]:
    rows = []
    smallest, largest = sizes[0], sizes[-1]
    for name, by_size in figures.items():
        for size, value in by_size.items():
            ratio = value / by_size[smallest]
            target, met = "", None
            if name == "feedback endpoint p99":
                shown = f"{value:.1f} ms (p50 {feedback_p50[size]:.1f} ms)"
                if size == largest and size != smallest:
                    target = f"<= {FEEDBACK_P99_GROWTH}x at {smallest:,}"
                    met = ratio <= FEEDBACK_P99_GROWTH
            else:
                shown = f"{value:.3f} s"
                if size == largest:
                    target, met = f"< {TARGETS[name]:g} s", value < TARGETS[name]
            rows.append(Row("growth", f"{name}, {size:,} logged", shown, ratio, None, target, met))
    return rows
