"""Where a benchmark trains and how it serves.

A fresh embedded store under one folder, the examples' spec, and each service's environment.
"""

from __future__ import annotations

from pathlib import Path

from harness.project import service_env
from mlserve_assets.settings import PROJECT_ROOT, Settings


def bench_settings(work: Path) -> Settings:
    """SQLite tracking and prediction log, local artifacts and bentos, all under ``work``."""
    return Settings(
        home=work / "home",
        mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        artifact_location=(work / "artifacts").as_uri(),
        spec_paths=[PROJECT_ROOT / "examples/classification.yaml"],
        predictions_url=f"sqlite:///{work / 'training-feedback.db'}",
        bentoml_home=work / "bentoml",
    )


def bench_env(settings: Settings, home: Path, predictions_url: str) -> dict[str, str]:
    """The test services' environment (harness.project), run as production runs it.

    Every route needs the key, and no registry poll competes with the load.
    """
    return {
        **service_env(settings, "breast_cancer", predictions_url, home / "spool.db"),
        "MLSERVE_HOME": str(home),
        "MLSERVE_POLL_SECONDS": "0",
        "MLSERVE_OPEN_SCOPES": "",
    }
