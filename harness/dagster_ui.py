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
    params = {
        "selector": {
            "repositoryLocationName": "mlserve",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": selection,
        },
        "mode": "default",
    }
    launched = graphql(url, _LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]
