"""What every command shares: the configured project's stores, its environment, its output.

The one place the CLI sets environment defaults (the project's ``dagster.yaml`` and storage folder)
and the one way a command refuses (exit 1, the reason on stderr) or prints (text or ``--json``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from mlserve_assets.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # imported where used: `mlserve --help` should not load MLflow (2 s)
    from mlflow import MlflowClient

    from mlserve_assets.resources.predictions import PredictionLogResource
    from mlserve_assets.spec.models import ModelSpec
    from serving.store.predictions import PredictionStore


def dagster_environment(settings: Settings) -> dict[str, str]:
    """Environment defaults that point Dagster at the project's dagster.yaml and storage folder."""
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    env.setdefault("MLSERVE_DAGSTER_STORAGE", str(settings.home / "dagster"))
    return env


@dataclass
class Project:
    """The stores of the configured project."""

    settings: Settings
    client: MlflowClient
    log: PredictionLogResource
    specs: dict[str, ModelSpec]

    @property
    def store(self) -> PredictionStore:
        """The operational database: the prediction log and the champion's history."""
        return self.log.store

    def spec(self, model_name: str) -> ModelSpec:
        """A model's spec, or exit 1 naming the models there are."""
        if model_name not in self.specs:
            refuse(f"no model {model_name!r} in the specs; models: {', '.join(self.specs)}")
        return self.specs[model_name]


@contextmanager
def project() -> Iterator[Project]:
    """The configured project's stores, closed afterwards."""
    from mlflow import MlflowClient

    from mlserve_assets.resources.predictions import PredictionLogResource
    from mlserve_assets.spec.loader import SpecError, load_specs

    settings = Settings.from_env()
    os.environ.update(dagster_environment(settings))
    try:
        specs = {spec.name: spec for spec in load_specs(settings.spec_paths)}
    except SpecError as exc:
        refuse(str(exc))
    uri = settings.mlflow_tracking_uri
    log = PredictionLogResource(url=settings.predictions_url)
    try:
        yield Project(settings, MlflowClient(uri, uri), log, specs)
    finally:
        log.store.dispose()


def refuse(message: str) -> None:
    """Exit 1 with ``message`` on stderr (the commands' one way to refuse)."""
    click.echo(message, err=True)
    sys.exit(1)


def when(seconds: float | None) -> str:
    """A time as the operator reads it (local time), or "-" when there is none."""
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def emit(data: Any, as_json: bool, lines: list[str]) -> None:
    """Print ``data`` as JSON or ``lines`` as text: every read command's output."""
    click.echo(json.dumps(data, indent=2, default=str) if as_json else "\n".join(lines))
