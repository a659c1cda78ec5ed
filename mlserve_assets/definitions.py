"""The code location: every model of the spec files in ``MLSERVE_SPECS``.

Built when Dagster asks for it, not when the module is imported: importing this (a test, a tool,
``dg list``) reads no spec file, builds no graph and creates no folder.
"""

import dagster as dg

from mlserve_assets.assembly import build_definitions
from mlserve_assets.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    """Every model the configured spec files declare, with ``train_all``."""
    return build_definitions(Settings.from_env())
