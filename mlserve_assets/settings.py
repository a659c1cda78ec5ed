"""The training side's settings: the serving side's locations plus the spec files to load.

The project's own folder is the default home and holds the example specs, so ``make run`` and
``mlserve dev`` work from a fresh clone with nothing set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from serving.locations import Locations

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings(Locations):
    """The locations, and the spec files (``MLSERVE_SPECS``, default ``examples/*.yaml``).

    ``MLSERVE_SPECS`` lists files or folders, separated by ``:``; a folder stands for the
    ``*.yaml`` files in it.
    """

    spec_paths: list[Path]

    @classmethod
    def from_env(cls, default_home: Path | None = None) -> Settings:
        """Read MLSERVE_SPECS and the locations; the home defaults to ``PROJECT_ROOT/.mlserve``."""
        locations = Locations.from_env(default_home or PROJECT_ROOT / ".mlserve")
        entries = [Path(p) for p in os.environ.get("MLSERVE_SPECS", "").split(os.pathsep) if p]
        paths = [
            spec
            for entry in entries or [PROJECT_ROOT / "examples"]
            for spec in (sorted(entry.glob("*.yaml")) if entry.is_dir() else [entry])
        ]
        return cls(**vars(locations), spec_paths=paths)
