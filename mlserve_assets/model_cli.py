"""Commands about a model's shape and its answers: what a spec becomes, predictions for a CSV.

``plan`` builds the Dagster definitions without running anything; ``predict`` goes through the
running service, so every row is logged and can be given feedback like any other prediction.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlserve_assets.champion_cli import emit, refuse
from mlserve_assets.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plan(as_json: bool) -> None:
    """What each declared model becomes: assets, checks, job, sensor and bento (nothing runs)."""
    from mlserve_assets.assembly import build_definitions
    from mlserve_assets.spec_loader import SpecError
    from serving.package import bento_name

    settings = Settings.from_env()
    try:
        defs = build_definitions(settings)
    except SpecError as exc:
        refuse(str(exc))
    graph = defs.resolve_asset_graph()
    sensors = {s.name: s for s in defs.sensors or []}
    models: dict[str, dict[str, Any]] = {}
    for key in graph.toposorted_asset_keys:  # upstream first
        model, stage = key.path
        models.setdefault(model, {"assets": [], "checks": []})["assets"].append(stage)
    for check in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.path, c.name)):
        models[check.asset_key.path[0]]["checks"].append(
            f"{check.asset_key.path[1]}:{check.name}"
            + (" (blocking)" if graph.get_check_spec(check).blocking else "")
        )
    for name, model in models.items():
        sensor = sensors[f"retrain_{name}"]
        model |= {
            "job": f"train_{name}",
            "sensor": f"{sensor.name}: {sensor.description}",
            "bento": bento_name(name),
        }
    lines = []
    for name, model in models.items():
        lines += [
            name,
            f"  assets  {', '.join(model['assets'])}",
            f"  checks  {', '.join(model['checks'])}",
            f"  job     {model['job']}",
            f"  sensor  {model['sensor']}",
            f"  bento   {model['bento']}",
        ]
    emit(models, as_json, lines)


@click.command()
@click.argument("model_name")
@click.argument("records", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default="http://127.0.0.1:3100", show_default=True, help="The service.")
@click.option(
    "--api-key", envvar="MLSERVE_API_KEY", help="A key with the predict scope, if needed."
)
@click.option("--batch", default=500, show_default=True, help="Records per request.")
def predict(model_name: str, records: Path, url: str, api_key: str | None, batch: int) -> None:
    """Predict every row of RECORDS (a CSV) through the running service; CSV to stdout.

    Each row keeps its columns and gains prediction, the class probabilities (classifiers),
    prediction_id (for feedback) and model_version. Every row is logged by the service like any
    other prediction. A refused batch stops the command (exit 1) naming the row and field.
    """
    import httpx
    import pandas as pd

    from serving.auth import client_headers

    frame = pd.read_csv(records)
    answers: list[dict[str, Any]] = []
    headers = client_headers(api_key, Settings.from_env().home)
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        served = http.get("/model")
        if served.status_code != 200:
            refuse(f"{url}/model answered {served.status_code}: {served.text[:300]}")
        if served.json()["name"] != model_name:
            refuse(f"{url} serves {served.json()['name']}, not {model_name}")
        rows = _records(frame, served.json()["features"])
        for start in range(0, len(rows), batch):
            response = http.post("/predict", json={"records": rows[start : start + batch]})
            if response.status_code != 200:
                problems = [
                    f"row {start + e['record'] + 1 if e['record'] is not None else '-'}: "
                    f"{e['field']}: {e['problem']}"
                    for e in response.json().get("errors", [])
                ]
                refuse(f"{response.status_code} from {url}:\n" + "\n".join(problems[:20]))
            answers.extend(response.json()["predictions"])
    out = frame.copy()
    out["prediction"] = [a["prediction"] for a in answers]
    for label in answers[0].get("probabilities", {}) if answers else {}:
        out[f"probability_{label}"] = [a["probabilities"][label] for a in answers]
    out["prediction_id"] = [a["prediction_id"] for a in answers]
    out["model_version"] = [a["model_version"] for a in answers]
    out.to_csv(sys.stdout, index=False)


def _records(frame: Any, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CSV's rows as the service takes them: gaps as null, numeric features as numbers.

    One stray word in a numeric column makes pandas read the whole column as text; numbers are
    parsed back value by value, so only that row is refused, naming its field.
    """
    import pandas as pd

    frame = frame.astype(object).where(frame.notna(), None)
    for feature in features:
        name = feature["name"]
        if name in frame and feature["type"] in ("double", "float", "long", "integer"):
            parsed = pd.to_numeric(frame[name], errors="coerce").astype(object)
            frame[name] = parsed.where(parsed.notna(), frame[name])
    return frame.to_dict("records")
