"""The closed loop with real processes: Dagster daemon + sensor, a served model, HTTP traffic.

Nothing but predictions and labels is sent; the daemon's sensor must start the retraining, the
gate must decide, and the service must pick the new champion up by itself. The model is declared
with the spec's default retraining settings: the data mix is chosen by the held-out labels, so the
loop has to recover from shifts it was not tuned for.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from harness.loop import BATCH, LOOP_TIMEOUT, closed_loop
from harness.servers import s3_client
from mlserve_assets.cli.simulation import SCENARIOS, concept_rows
from serving.registry import Tag
from serving.store.moves import history

# The production backends (PostgreSQL, S3, an MLflow server: two minutes of start-ups and CPU)
# run with the container stack (`make test-containers`, which CI runs after `make test`).
PRODUCTION = pytest.param("production", "service", marks=pytest.mark.containers)


@pytest.mark.parametrize(("backend", "serve"), [PRODUCTION, ("embedded", "bento")])
def test_a_rotation_retrains_promotes_and_the_service_switches(
    backend, serve, tmp_path, record_property
):
    probe = concept_rows(300, SCENARIOS["rotation"].final(), seed=99)
    with closed_loop(tmp_path, backend, serve) as loop:
        before, _ = loop.accuracy(probe)
        crossed = loop.stream("rotation", 3 * BATCH + BATCH)
        version, seconds = loop.first_new_answer(probe[:5], crossed)
        record_property("seconds_from_threshold_to_new_version", round(seconds, 1))
        deadline = crossed + LOOP_TIMEOUT
        after, _ = loop.accuracy(probe)
        assert loop.champion() == version
        assert loop.client.get_model_version("drift", version).tags[Tag.GATE] == "passed"
        # The move is in the champion's history, made by the gate in a sensor-started run.
        moves = history(loop.store, "drift")
        assert [(m.from_version, m.to_version) for m in moves] == [(None, "1"), ("1", version)]
        assert moves[-1].moved_by.endswith("(sensor retrain_drift)"), moves[-1].moved_by
        assert moves[-1].evidence["promoted"] is True
        assert after > before + 0.1, (before, after)
        # Whatever served, its predictions reached the store the sensor reads.
        assert loop.store.count_predictions("drift") >= 4 * BATCH
        if "s3" in loop.backend:  # production: prove the run and the artifacts used those services
            engine = sa.create_engine(loop.backend["dagster_postgres"])
            while True:
                with engine.connect() as conn:
                    statuses = conn.execute(sa.text("select status from runs")).scalars().all()
                assert "FAILURE" not in statuses
                if "SUCCESS" in statuses:
                    break
                assert time.monotonic() < deadline, f"no retraining run succeeded: {statuses}"
                time.sleep(0.5)
            engine.dispose()
            objects = s3_client(loop.backend["s3"]).list_objects_v2(Bucket="mlflow")
            assert any(o["Key"].endswith("model.skops") for o in objects.get("Contents", []))
