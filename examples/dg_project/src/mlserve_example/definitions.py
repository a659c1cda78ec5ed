"""The code location: every component instance under defs/."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily, as `dg` projects do, so listing components does not build the models."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
