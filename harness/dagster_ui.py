"""What the Dagster UI's buttons send, over the webserver's GraphQL API."""

from __future__ import annotations

import httpx

_LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """One query against ``url`` (the webserver's /graphql); its ``data``."""
    answer = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=60)
    return answer.json()["data"]


def materialize_group(url: str, group: str) -> str:
    """The UI's "Materialize all" on a group: a launchRun of the asset job; the run id."""
    nodes = graphql(url, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["groupName"] == group]
    return _launch(url, "__ASSET_JOB", assetSelection=selection)


def launch_job(url: str, job: str) -> str:
    """The UI's "Launch run" on a job (a model's ``train_MODEL``, with its tags); the run id."""
    return _launch(url, job)


def _launch(url: str, job: str, **selector: object) -> str:
    params = {
        "selector": {
            "repositoryLocationName": "mlserve",
            "repositoryName": "__repository__",
            "jobName": job,
            **selector,
        },
        "mode": "default",
    }
    launched = graphql(url, _LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


_RUNS = """
query($ids: [String!]) {
  runsOrError(filter: { runIds: $ids }) {
    ... on Runs {
      results { runId jobName status creationTime startTime endTime tags { key value } }
    }
  }
}"""


def runs(url: str, ids: list[str] | None = None) -> list[dict]:
    """Runs as the UI's run list shows them: job, status, when queued, started, ended, tags."""
    return graphql(url, _RUNS, {"ids": ids})["runsOrError"]["results"]
