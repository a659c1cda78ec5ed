"""The families section of the benchmark stays runnable: one small run, every row present.

Figures are not asserted (``make bench`` measures them); what is asserted is that the section
runs end to end and reports each family served each way, with the targets it answers.
"""

from __future__ import annotations

import subprocess
import sys

from harness.servers import child_env
from mlserve_assets.settings import PROJECT_ROOT


def test_one_small_run_serves_every_family_every_way():
    command = [sys.executable, "-m", "bench", "--only", "families", "--rounds", "1"]
    command += ["--seconds", "1", "--rate", "50"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT, env=child_env({})
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| families")]
    for family in ("logistic", "200-tree forest", "gradient boosting"):
        for way in ("service, onnx twin", "service, scikit-learn", "anchor"):
            for load in ("1 record", "100 records", "1 record at 50/s"):
                assert any(f"{family}: {way}, {load} |" in row for row in rows), (family, way)
    assert sum("p99 < 20 ms" in row for row in rows) == 3
