"""Package one registered version as a bento: import it into the BentoML model store, then build.

Run as ``python -m serving.package MODEL VERSION`` with ``BENTOML_HOME`` and ``MLFLOW_TRACKING_URI``
set: BentoML reads its home once per process, so the Dagster asset runs this in a child process
rather than reconfiguring its own. The version is downloaded through ``serving.registry`` (the
tracking URI given, not MLflow's process-wide one) and imported from that folder. Prints the bento
tag as JSON on the last line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import bentoml
import yaml

from serving.bento_store import bento_name, version_labels
from serving.locations import Locations
from serving.registry import RegistryClient, connect, download_version, version_metadata

# The folder that holds the ``serving`` package: the bento's build context.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
# The service imports only its own package, so that is all a bento carries.
INCLUDE = ["serving/**/*.py"]
PACKAGES = [
    "mlflow",
    "scikit-learn",
    "skops",
    "pandas",
    "sqlalchemy",
    "psycopg2-binary",
    "fastapi",
    "orjson",
    "pyyaml",
    "prometheus-client",
    "bentoml",
]


def pinned(extra: list[str]) -> list[str]:
    """Each package and ``extra`` at the version this process runs, the model's training's.

    A container resolving its own scikit-learn or skops could read the model differently.
    """
    return [f"{name}=={metadata.version(name)}" for name in [*PACKAGES, *extra]]


def package(client: RegistryClient, model_name: str, version: str) -> dict[str, str]:
    """Import ``models:/model_name/version`` and build a bento that serves it offline.

    The caller looks for a bento of the version first (``serving.bento_store.built_bento``).
    """
    meta = version_metadata(client, model_name, version)
    twin = json.loads(meta.get("onnx") or "{}").get("verified", False)
    with tempfile.TemporaryDirectory() as tmp:
        stored = bentoml.mlflow.import_model(
            bento_name(model_name),
            model_uri=str(download_version(client, model_name, version, Path(tmp))),
            labels={"mlflow_version": str(version)},
            metadata={k: v for k, v in meta.items() if v is not None},
        )
    bentofile = {
        "service": "serving.service:ModelService",
        "name": bento_name(model_name),
        "labels": version_labels(model_name, version),
        "include": INCLUDE,
        "models": [str(stored.tag)],
        # Pins come from the project; locking would resolve the whole stack again on every build.
        # onnxruntime only where a verified twin will answer (serving.model.twin).
        "python": {"packages": pinned(["onnxruntime"] if twin else []), "lock_packages": False},
    }
    trusted = os.environ.get("MLSERVE_TRUSTED_TYPES")
    if trusted:  # the spec's extra types, for the container the bento becomes
        bentofile["envs"] = [{"name": "MLSERVE_TRUSTED_TYPES", "value": trusted}]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bentofile.yaml"
        path.write_text(yaml.safe_dump(bentofile))
        bento = bentoml.bentos.build_bentofile(str(path), build_ctx=str(SOURCE_ROOT))
    return {"bento": str(bento.tag), "model": str(stored.tag)}


if __name__ == "__main__":
    registry = connect(Locations.from_env().mlflow_tracking_uri)
    sys.stdout.write(json.dumps(package(registry, sys.argv[1], sys.argv[2])) + "\n")
