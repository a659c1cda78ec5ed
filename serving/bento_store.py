"""The project's bentos as BentoML stores them, read without starting BentoML.

Each bento's folder holds its manifest, ``bento.yaml`` (name, version, labels, models). Reading
those is how a training finds that its champion is packaged already: asking BentoML means a child
process (BentoML reads its home once per process) importing the whole serving stack, 6.8 s of a
core for an answer the manifests give in milliseconds (measured).
"""

from __future__ import annotations

from pathlib import Path

import yaml


def bento_name(model_name: str) -> str:
    """BentoML names allow letters, digits, dots, dashes and underscores only in lower case."""
    return f"mlserve-{model_name.replace('_', '-')}"


def version_labels(model_name: str, version: str) -> dict[str, str]:
    """The labels a bento of one registered version carries: what it is found by."""
    return {"model": model_name, "mlflow_version": str(version)}


def built_bento(bentoml_home: Path, model_name: str, version: str) -> dict[str, str] | None:
    """The bento and BentoML model tags of ``version``'s bento in ``bentoml_home``, if built."""
    wanted = version_labels(model_name, version)
    for manifest in sorted((bentoml_home / "bentos" / bento_name(model_name)).glob("*/bento.yaml")):
        info = yaml.safe_load(manifest.read_text())
        if info.get("labels") == wanted and info.get("models"):
            return {"bento": f"{info['name']}:{info['version']}", "model": info["models"][0]["tag"]}
    return None
