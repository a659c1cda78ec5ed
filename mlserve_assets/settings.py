"""Where things live, read from the environment: the only switch between embedded and production.

Defaults put everything under one project-local folder (``.mlserve/``) on SQLite; the production
stack overrides the same variables with PostgreSQL and S3 locations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """The embedded default unless an environment variable says otherwise."""

    home: Path
    mlflow_tracking_uri: str
    artifact_location: str | None
    spec_paths: list[Path]
    predictions_url: str
    bentoml_home: Path

    @classmethod
    def from_env(cls) -> Settings:
        """Read the MLSERVE_* variables and MLFLOW_TRACKING_URI."""
        home = Path(os.environ.get("MLSERVE_HOME", PROJECT_ROOT / ".mlserve")).resolve()
        specs = os.environ.get("MLSERVE_SPECS")
        paths = (
            [Path(p) for p in specs.split(os.pathsep) if p]
            if specs
            else sorted((PROJECT_ROOT / "examples").glob("*.yaml"))
        )
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        # A tracking server decides where artifacts go (it proxies them to S3); a local store
        # keeps them beside it under MLSERVE_HOME.
        remote = tracking_uri.startswith(("http://", "https://"))
        default_artifacts = None if remote else (home / "artifacts").as_uri()
        return cls(
            home=home,
            mlflow_tracking_uri=tracking_uri,
            artifact_location=os.environ.get("MLSERVE_ARTIFACT_ROOT") or default_artifacts,
            spec_paths=paths,
            predictions_url=os.environ.get(
                "MLSERVE_PREDICTIONS_URL", f"sqlite:///{home / 'predictions.db'}"
            ),
            bentoml_home=Path(os.environ.get("BENTOML_HOME", home / "bentoml")),
        )
