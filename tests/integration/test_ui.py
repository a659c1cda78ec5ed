"""The Dagster UI as the cockpit, as a user meets it after `mlserve train`: over the webserver's
GraphQL API (what the UI's buttons send) and in a real browser (Debian's chromium, driven by
Playwright), with the service's docs page beside it.

Screenshots go to ``$MLSERVE_SCREENSHOTS`` (default ``test-artifacts/screenshots`` in the project).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from harness.cli import mlserve
from harness.dagster_ui import graphql, materialize_group
from harness.project import STAGES
from harness.servers import child_env, free_port, managed_process
from mlserve_assets.settings import PROJECT_ROOT

MLSERVE = str(Path(sys.executable).parent / "mlserve")
SHOTS = Path(os.environ.get("MLSERVE_SCREENSHOTS", PROJECT_ROOT / "test-artifacts/screenshots"))
# As root in a sandbox with no internet: no sandboxing, no calls home (each would be refused).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MLSERVE, *args], env=child_env(env), capture_output=True, text=True, timeout=300
    )


@dataclass
class Project:
    env: dict[str, str]
    ui: str
    trained: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Project]:
    """churn trained by `mlserve train` on the embedded default, and `mlserve dev` running."""
    root = tmp_path_factory.mktemp("ui")
    env = {
        "MLSERVE_HOME": str(root / "home"),
        "MLSERVE_SPECS": str(PROJECT_ROOT / "examples/churn_csv.yaml"),
    }
    trained = _run(["train"], env)
    assert trained.returncode == 0, trained.stdout + trained.stderr[-3000:]
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    with managed_process([MLSERVE, "dev", "-p", str(port)], env, root / "dev.log", ui):
        query = "{ assetNodes { assetKey { path } } }"
        deadline = time.monotonic() + 120
        while True:  # the webserver answers before the code location has loaded
            try:
                answer = httpx.post(f"{ui}/graphql", json={"query": query}, timeout=10).json()
                if answer["data"]["assetNodes"]:
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass
            assert time.monotonic() < deadline, (root / "dev.log").read_text()[-3000:]
            time.sleep(1)
        yield Project(env, ui, trained)


def test_train_shows_each_step_then_a_table_and_the_history_records_the_move(project):
    out = project.trained.stdout
    steps = re.findall(r"^  churn +(\w+) +[\d.]+ s$", out, re.M)
    assert steps == STAGES
    assert re.search(r"^churn +9 +[\d.]+  \S+ x base +PROMOTED v1: ", out, re.M)
    assert out.index("  churn ") < out.index("model ")  # progress first, the table last
    assert "DEBUG" not in out + project.trained.stderr  # Dagster's event log only with --verbose

    [move] = json.loads(mlserve(["history", "churn", "--json"], project.env).stdout)
    assert (move["from_version"], move["to_version"]) == (None, "1")
    assert re.fullmatch(r"gate, run [0-9a-f-]{36} \(by hand\)", move["moved_by"])
    assert move["reason"].startswith("no champion yet")
    assert move["evidence"]["promoted"] is True
    status = json.loads(mlserve(["status", "churn", "--json"], project.env).stdout)
    assert status["champion"]["moved_by"] == move["moved_by"]
    assert status["last_training"]["gate"] == "passed"
    assert status["last_training"]["trigger"] == "by hand"


def _open(page: Page, url: str) -> None:
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")  # Dagster's newsletter prompt, first visit
    with contextlib.suppress(PlaywrightTimeout):  # shown once per browser profile, if at all
        skip.click(timeout=5000)


def test_a_browser_finds_the_lineage_the_leaderboard_the_decision_and_the_docs(project, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    service = f"http://127.0.0.1:{port}"
    serve = [MLSERVE, "serve", "churn", "--port", str(port)]
    with (
        managed_process(serve, project.env, tmp_path / "serve.log", f"{service}/readyz"),
        sync_playwright() as playwright,
    ):
        chromium = playwright.chromium
        browser = chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)

        _open(page, f"{project.ui}/asset-groups/churn")  # the model's lineage
        for stage in ("dataset", "validated_dataset", "candidates", "champion", "bento"):
            expect(page.get_by_text(stage, exact=True).first).to_be_visible()
        page.screenshot(path=SHOTS / "lineage.png")

        _open(page, f"{project.ui}/assets/churn/candidates")
        expect(page.get_by_text("leaderboard", exact=True).first).to_be_visible()
        for candidate in ("logreg", "extra_trees"):  # rows of the leaderboard table
            expect(page.get_by_role("cell", name=candidate, exact=True).first).to_be_visible()
        page.screenshot(path=SHOTS / "leaderboard.png", full_page=True)

        _open(page, f"{project.ui}/assets/churn/champion")
        decision = page.get_by_text(re.compile(r"^(PROMOTED|UNCHANGED) v1")).first
        expect(decision).to_be_visible()
        page.screenshot(path=SHOTS / "decision.png", full_page=True)

        page.goto(f"{service}/docs")
        expect(page).to_have_title(re.compile(r"churn v1"))
        expect(page.get_by_text("/predict", exact=True).first).to_be_visible()
        page.screenshot(path=SHOTS / "service-docs.png", full_page=True)
        browser.close()
    for name in ("lineage", "leaderboard", "decision", "service-docs"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


_RUN = """
query($id: ID!) {
  runOrError(runId: $id) { ... on Run { status startTime endTime } }
  logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } }
}"""


def _materialize_group_as_the_ui_does(url: str, group: str) -> dict:
    """The UI's "Materialize all" on a group, followed to its end: status, times, messages."""
    run_id = materialize_group(url, group)
    deadline = time.monotonic() + 180
    while True:
        data = graphql(url, _RUN, {"id": run_id})
        run = data["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"the UI-launched run is still {run['status']}"
        time.sleep(1)
    events = data["logsForRun"]["events"]
    return {**run, "messages": [e["message"] for e in events if e.get("message")]}


def test_materialize_from_the_ui_runs_in_process_and_the_cli_run_is_listed(
    project, record_property
):
    url = f"{project.ui}/graphql"
    launched = _materialize_group_as_the_ui_does(url, "churn")
    assert launched["status"] == "SUCCESS", launched
    record_property("ui_group_seconds", round(launched["endTime"] - launched["startTime"], 1))
    assert any("in process" in m for m in launched["messages"]), launched["messages"]
    assert not any("multiprocess" in m for m in launched["messages"])
    # The data, spec and code did not change: the version is reused, not registered again.
    uri = f"sqlite:///{Path(project.env['MLSERVE_HOME']) / 'mlflow.db'}"
    versions = MlflowClient(uri, uri).search_model_versions("name='churn'")
    assert [str(v.version) for v in versions] == ["1"]
    query = "{ runsOrError { ... on Runs { results { status jobName } } } }"
    runs = graphql(url, query)
    assert {"status": "SUCCESS", "jobName": "train_all"} in runs["runsOrError"]["results"]
