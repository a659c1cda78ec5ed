"""Where the stores are, read from the environment: the only switch between embedded and production.

By default everything lives under one folder (``$MLSERVE_HOME``) on SQLite; the production stack
sets the same variables to PostgreSQL and S3 locations. The service reads these and nothing else,
so a bento finds its stores by configuration, never by where its own source was copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Locations:
    """The tracking store, the artifacts, the prediction log and the BentoML home."""

    home: Path
    mlflow_tracking_uri: str
    artifact_location: str | None
    predictions_url: str
    bentoml_home: Path

    @classmethod
    def from_env(cls, default_home: Path | None = None) -> Locations:
        """Read MLSERVE_HOME, MLFLOW_TRACKING_URI, MLSERVE_ARTIFACT_ROOT, MLSERVE_PREDICTIONS_URL.

        Without ``MLSERVE_HOME`` the home is ``default_home``, or ``./.mlserve`` in the working
        directory (where ``bentoml serve`` and ``mlserve`` are started).
        """
        default = default_home or Path.cwd() / ".mlserve"
        home = Path(os.environ.get("MLSERVE_HOME") or default).resolve()
        tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        # A tracking server decides where artifacts go (it proxies them to S3); a local store
        # keeps them beside it under the home.
        remote = tracking_uri.startswith(("http://", "https://"))
        default_artifacts = None if remote else (home / "artifacts").as_uri()
        return cls(
            home=home,
            mlflow_tracking_uri=tracking_uri,
            artifact_location=os.environ.get("MLSERVE_ARTIFACT_ROOT") or default_artifacts,
            predictions_url=os.environ.get(
                "MLSERVE_PREDICTIONS_URL", f"sqlite:///{home / 'predictions.db'}"
            ),
            bentoml_home=Path(os.environ.get("BENTOML_HOME", home / "bentoml")),
        )

    def environment(self) -> dict[str, str]:
        """These locations as the variables a child process (a service, a packager) reads."""
        env = {
            "MLSERVE_HOME": str(self.home),
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "MLSERVE_PREDICTIONS_URL": self.predictions_url,
            "BENTOML_HOME": str(self.bentoml_home),
        }
        if self.artifact_location:
            env["MLSERVE_ARTIFACT_ROOT"] = self.artifact_location
        return env
