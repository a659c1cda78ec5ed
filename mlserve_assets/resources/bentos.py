"""Packaging a registered version as a BentoML bento, in a project-local BentoML home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from serving.bento_store import built_bento


class BentoPackager(dg.ConfigurableResource):
    """Runs ``serving.package`` in a child process pointed at this BentoML home and MLflow store.

    A child process because BentoML reads ``BENTOML_HOME`` once per process; the Dagster process
    (and the tests running it in-process) keep whatever home they started with.
    """

    bentoml_home: str
    tracking_uri: str

    def build(self, model_name: str, version: str, trusted_types: list[str]) -> dict[str, str]:
        """Import the version into the model store and build its bento; returns the tags.

        ``trusted_types`` (the spec's) go into the bento's environment, for its container. A
        version packaged already is not built again (a held or unchanged training's champion):
        its bento is returned.
        """
        if built := built_bento(Path(self.bentoml_home), model_name, version):
            return built
        env = {
            **os.environ,
            "BENTOML_HOME": self.bentoml_home,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLSERVE_TRUSTED_TYPES": ",".join(trusted_types),
        }
        done = subprocess.run(
            [sys.executable, "-m", "serving.package", model_name, version],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise dg.Failure(
                f"bento build for {model_name} v{version} failed",
                metadata={"stderr": dg.MetadataValue.text(done.stderr[-4000:])},
            )
        return json.loads(done.stdout.strip().splitlines()[-1])
