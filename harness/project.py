"""A project as the tests and the benchmark make one: a spec written, trained, then served.

Shared by ``tests`` and ``bench`` (the loop's median is measured with the same harness the loop
tests use), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import dagster as dg
import yaml

from mlserve_assets.assembly import build_definitions
from mlserve_assets.settings import PROJECT_ROOT, Settings
from serving.store.moves import history, recording
from serving.store.predictions import PredictionStore

EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*.yaml"))

# The key every service started here accepts, with every scope; clients send AUTH.
API_KEY = "test-key-with-every-scope"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def write_spec(path: Path, models: list[dict]) -> Path:
    """A spec file as a user writes it, from the models' dicts."""
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return path


def train(
    settings: Settings,
    specs: list[Path],
    job: str = "train_all",
    *,
    bentos: Collection[str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run a training job in-process, as `mlserve train` does, on an ephemeral instance.

    ``bentos`` names the models whose bento step runs (None: every model's; empty: none), for
    a test that serves none or one: a bento builds in a child process that imports the whole
    serving stack (6.5 s of a core each, 39 of the 49 s of training every example, measured).

    Dagster's console log stays at WARNING: at DEBUG it fills a failing test's captured output,
    and CI shows only the tail of it, so the assertion itself was cut off.
    """
    defs = build_definitions(Settings(**{**settings.__dict__, "spec_paths": specs}))
    job_def = defs.resolve_job_def(job)
    keys = job_def.asset_layer.executable_asset_keys
    selection = None
    if bentos is not None:  # every step but the bentos of the models not named
        selection = [k for k in keys if k.path[-1] != "bento" or k.path[0] in bentos]
    return job_def.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        asset_selection=selection,
    )


def service_env(
    settings: Settings, model: str, predictions_url: str, spool: Path
) -> dict[str, str]:
    """A service's environment: one model, its log and spool, a short poll, the test key.

    A log other than the project's gets the model's recorded champion moves copied in, as if it
    had been the project's log all along: the service serves only a recorded move.
    """
    if predictions_url != settings.predictions_url:
        copy_moves(settings.predictions_url, predictions_url, model)
    return {
        "MLSERVE_HOME": str(settings.home),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLSERVE_MODEL": model,
        "MLSERVE_PREDICTIONS_URL": predictions_url,
        "MLSERVE_SPOOL": str(spool),
        "MLSERVE_POLL_SECONDS": "1",
        "MLSERVE_API_KEYS": f"predict,feedback,admin:{API_KEY}",
        "BENTOML_HOME": str(settings.bentoml_home),
    }


def owner_key(home: Path) -> None:
    """Make the test key the project's local key, as `mlserve serve` would have made one.

    The loop's labels then come from the owner's key, which the gate trusts, as they do for a
    user running `mlserve simulate` on the embedded default.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "api-key").write_text(API_KEY + "\n")
    (home / "api-key").chmod(0o600)


def copy_moves(source_url: str, target_url: str, model: str) -> None:
    """The model's champion history from one prediction log into another (its schema made)."""
    source, target = PredictionStore(source_url), PredictionStore(target_url)
    target.create_schema()
    for move in history(source, model)[len(history(target, model)) :]:
        with recording(target, move):
            pass
    source.dispose()
    target.dispose()


# Each model's assets, in the order an in-process run materialises them.
STAGES = [
    "dataset",
    "predictions",
    "validated_dataset",
    "feedback",
    "split",
    "candidates",
    "registered_version",
    "champion",
    "bento",
]


def materialization_metadata(result: dg.ExecuteInProcessResult, *path: str) -> dict:
    """The metadata of the materialisation of the asset at ``path`` in an in-process run."""
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat is not None and tuple(mat.asset_key.path) == path:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {'/'.join(path)}")
