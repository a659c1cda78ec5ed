"""What someone with write access to the registry could register, for the trust tests.

Each forged version is a copy of the champion's own model folder with one thing changed, so the
service's checks, not a malformed folder, are what refuse it. The payloads leave a file behind
when they run: a test asserts the file's absence to show that nothing ran.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import skops.io
import yaml
from sklearn.base import BaseEstimator, ClassifierMixin

from serving.registry import RegistryClient, download_version


class Tripwire(ClassifierMixin, BaseEstimator):
    """An estimator that creates the file ``marker`` names when a loader rebuilds it."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


class Payload:
    """A pickle that creates the file ``marker`` names when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def forged_version(
    client: RegistryClient, name: str, base: str, folder: Path, change: Callable[[Path], None]
) -> tuple[str, Path]:
    """Version ``base``'s model folder, copied into ``folder``, changed, registered anew.

    Returns the new version and its model folder.
    """
    model_dir = download_version(client, name, base, folder)
    change(model_dir)
    version = client.create_model_version(name, source=model_dir.as_uri()).version
    return str(version), model_dir


def pickled(marker: Path) -> Callable[[Path], None]:
    """Make a model folder say cloudpickle and hold a payload."""

    def change(model_dir: Path) -> None:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        flavor = mlmodel["flavors"]["sklearn"]
        flavor.update(serialization_format="cloudpickle", pickled_model="model.pkl")
        (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
        (model_dir / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))

    return change


def replaced(estimator: object) -> Callable[[Path], None]:
    """Put another object in a model folder's skops file, as skops saves it."""

    def change(model_dir: Path) -> None:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        file = model_dir / mlmodel["flavors"]["sklearn"]["pickled_model"]
        file.write_bytes(skops.io.dumps(estimator))

    return change
