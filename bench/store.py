"""Where a benchmark trains: a fresh embedded store under one folder, the examples' spec."""

from __future__ import annotations

from pathlib import Path

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
