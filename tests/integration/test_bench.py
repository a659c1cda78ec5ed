"""The benchmark stays runnable: one small run of the sections that need no load of minutes.

Figures are not asserted (speed is measured by ``make bench``, not by timed tests); what is
asserted is that the command runs end to end and that its own correctness checks hold: every
answered prediction logged, and a row for every size and measure.
"""

from __future__ import annotations

import subprocess
import sys

from harness.servers import child_env
from mlserve_assets.settings import PROJECT_ROOT


def test_one_small_run_prints_every_row_and_loses_no_prediction():
    sections = "families,memory,growth,retraining,selection"
    command = [sys.executable, "-m", "bench", "--only", sections]
    command += ["--rounds", "1", "--soak", "5", "--sizes", "500,1000", "--draws", "1"]
    # One family stands for the three: the same code serves each (logistic and boosting too).
    command += ["--families", "forest", "--seconds", "1"]
    # The memory section's 100k cost a minute here; the soak at 50 req/s: rows, not figures.
    command += ["--predictions", "3000", "--rate", "50"]
    command += ["--base-rows", "300", "--labels", "100"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT, env=child_env({})
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [
        line
        for line in run.stdout.splitlines()
        if line.startswith(("| families", "| memory", "| growth", "| retraining", "| selection"))
    ]
    for way in ("service, onnx twin", "service, scikit-learn", "anchor"):
        for load in ("1 record", "100 records", "1 record at 50/s"):
            assert any(f"200-tree forest: {way}, {load} |" in row for row in rows), (way, load)
    assert any(
        "200-tree forest: service, onnx twin, 1 record at 50/s" in r and "p99 < 20 ms" in r
        for r in rows
    )
    logged = next(row for row in rows if "logged rows == answered" in row)
    assert logged.endswith("| equal | yes |"), logged
    for measure in ("sensor tick", "predictions asset", "feedback asset", "feedback endpoint p99"):
        for size in ("500", "1,000"):
            assert any(f"{measure}, {size} logged" in row for row in rows), (measure, size)
    assert any("soak 5 s" in row for row in rows)
    assert any("300 rows + 100 labels" in r and "21 fits" in r for r in rows)
    for case in ("gradual, 300 labels", "features, 300 labels", "rotation, 200 labels"):
        for measure in ("gate held", "below the oracle"):
            assert any(case in r and measure in r and " of 1 " in r for r in rows), case
    bounded = next(r for r in rows if "flipped labels, bounded: promoted" in r)
    assert "| 0 of 1 " in bounded and bounded.endswith("| yes |"), bounded
    assert any("two untrusted keys: promoted | 1 of 1" in r for r in rows)
