"""The code location: every model of the spec files in ``MLSERVE_SPECS``, assembled once."""

from mlserve_assets.assembly import build_definitions
from mlserve_assets.settings import Settings

defs = build_definitions(Settings.from_env())
