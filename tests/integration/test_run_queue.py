"""The instance's run queue with the real daemon: two trainings of one model never overlap.

Every training run carries ``mlserve/model`` (``factory.MODEL_RUN_TAG``) and the project's
``dagster.yaml`` lets one run per value out of the queue at a time: two trainings of one model
submitted together (a sensor's and a user's launch from the UI, say) both run, one after the
other, whoever started them. The sensor's own in-flight rule is tested in ``test_sensor.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from harness.loop import drift_spec
from harness.registries import tracking_store
from harness.servers import child_env, dagster_daemon
from mlserve_assets.factory import MODEL_RUN_TAG
from mlserve_assets.settings import PROJECT_ROOT

DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_two_trainings_of_one_model_wait_for_each_other_and_both_succeed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    env = {
        "MLSERVE_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_store(home),
        "MLSERVE_SPECS": str(drift_spec(tmp_path / "drift.yaml")),
        "DAGSTER_HOME": str(PROJECT_ROOT),
        "MLSERVE_DAGSTER_STORAGE": str(tmp_path / "dagster"),
    }
    launch = [DAGSTER, "job", "launch", "-w", "workspace.yaml", "-j", "train_drift"]
    for _ in range(2):  # both queued before the daemon starts: it finds them together
        done = subprocess.run(
            launch, env=child_env(env), cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("MLSERVE_DAGSTER_STORAGE", env["MLSERVE_DAGSTER_STORAGE"])
    with (
        dg.DagsterInstance.from_config(str(PROJECT_ROOT)) as instance,
        dagster_daemon(env, tmp_path / "daemon.log"),
    ):
        deadline = time.monotonic() + 240
        while True:
            runs = instance.get_run_records(dg.RunsFilter(job_name="train_drift"))
            if len(runs) == 2 and all(r.dagster_run.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, [r.dagster_run.status for r in runs]
            time.sleep(1)
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert [r.dagster_run.status for r in (first, second)] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert {r.dagster_run.tags[MODEL_RUN_TAG] for r in runs} == {"drift"}
    # Both were waiting when the daemon started, and two runs may run at once: the tag kept
    # them apart (without its limit the two overlap: seen).
    assert second.start_time >= first.end_time, (
        first.start_time,
        first.end_time,
        second.start_time,
    )
