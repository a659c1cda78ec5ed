"""Commands about the service: serve a model's bento, make an API key, predict a CSV through it.

``predict`` goes through the running service, so every row is logged and can be given feedback
like any other prediction.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from mlserve_assets.cli.project import refuse
from mlserve_assets.settings import Settings
from mlserve_assets.spec.loader import load_specs


@click.command()
@click.argument("model_name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3100, show_default=True, help="The Dagster UI keeps 3000.")
@click.option(
    "--wait",
    "wait_seconds",
    default=0.0,
    show_default=True,
    help="How long to wait for the model's first bento (a fresh stack has none yet).",
)
def serve(model_name: str, host: str, port: int, wait_seconds: float) -> None:
    """Serve the newest bento of MODEL_NAME, as its `bento` asset built it, with `bentoml serve`.

    Without MLSERVE_API_KEYS or MLSERVE_API_KEYS_FILE it makes a local key with every scope
    ($MLSERVE_HOME/api-key) that `mlserve simulate` uses; predictions stay open unless
    MLSERVE_OPEN_SCOPES says otherwise.

    The bento holds the promoted version, so the service starts without MLflow; once running it
    follows the `champion` alias like any other instance. It is handed this project's locations,
    so it logs to the prediction store the feedback assets and the sensor read, and follows the
    registry the training writes, on the embedded default as on the production stack.
    """
    settings = Settings.from_env()
    # BentoML reads BENTOML_HOME once, on import; the service reads the rest when it starts.
    os.environ.update(settings.environment())
    spec = next((m for m in load_specs(settings.spec_paths) if m.name == model_name), None)
    if spec is not None and spec.trusted_types:
        os.environ.setdefault("MLSERVE_TRUSTED_TYPES", ",".join(spec.trusted_types))
    if not os.environ.get("MLSERVE_API_KEYS") and not os.environ.get("MLSERVE_API_KEYS_FILE"):
        from serving.http.auth import local_key

        _, keys_file = local_key(settings.home)
        os.environ["MLSERVE_API_KEYS_FILE"] = str(keys_file)
        click.echo(f"feedback and admin need the key in {settings.home / 'api-key'}")

    import bentoml
    from bentoml.exceptions import NotFound

    from serving.bento_store import bento_name

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            tag = str(bentoml.bentos.get(f"{bento_name(model_name)}:latest").tag)
            break
        except NotFound:
            if time.monotonic() >= deadline:
                click.echo(
                    f"no bento for {model_name!r} in {settings.bentoml_home}: materialise "
                    f"{model_name}/bento first (`mlserve train --model {model_name}`)",
                    err=True,
                )
                sys.exit(1)
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    click.echo(f"serving {tag}")
    os.environ["BENTOML_HOME"] = str(_replica_home(settings.bentoml_home, port))
    bentoml_bin = str(Path(sys.executable).parent / "bentoml")
    os.execv(bentoml_bin, [bentoml_bin, "serve", tag, "--host", host, "--port", str(port)])


def _replica_home(shared: Path, port: int) -> Path:
    """A BentoML home of this server's own, whose bentos and models are the shared home's.

    BentoML empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when a server starts and keeps its
    counters there: replicas serving from one shared home (the stack's volume) would wipe and
    count each other's requests. The folder is the machine's (a container's own), one per port.
    """
    home = Path(tempfile.gettempdir()) / f"mlserve-serving-{port}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    for store in ("bentos", "models"):
        (shared / store).mkdir(parents=True, exist_ok=True)
        (home / store).symlink_to((shared / store).resolve(), target_is_directory=True)
    return home


@click.command()
@click.option(
    "--scopes",
    default="predict,feedback",
    show_default=True,
    help="Comma-separated: predict, feedback, admin.",
)
def key(scopes: str) -> None:
    """Make a new API key: the key for the client, and the line for the service's keys file.

    Only the line's hash reaches the service. To rotate, add the new line, move the clients to
    the new key, then delete the old line; every line in the file is valid at once.
    """
    from serving.http.auth import KeyConfigError, entry, key_id, new_key

    secret = new_key()
    try:
        line = entry(scopes, secret)
    except KeyConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from exc
    click.echo(f"key (give to the client):  {secret}")
    click.echo(f"entry (MLSERVE_API_KEYS_FILE):  {line}")
    click.echo(f"id (on every label it sends; mlserve labels purge --key):  {key_id(secret)}")


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

    from serving.http.auth import client_headers

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
