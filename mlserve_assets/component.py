"""mlserve as a Dagster component: models declared in a ``defs.yaml``, the ``dg`` way.

The attributes are the spec's own model (``ModelSpec``), so ``dg check defs`` validates a model
declared inline exactly as ``mlserve validate`` validates a spec file, and editors get the same
schema; the graph comes from the same factory as the ``MLSERVE_SPECS`` code location.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import BaseModel, ConfigDict, model_validator

from mlserve_assets.assembly import models_definitions
from mlserve_assets.spec.loader import load_spec, located
from mlserve_assets.spec.models import ModelSpec
from serving.locations import Locations


class MlserveModelsAttributes(BaseModel):
    """Either ``spec`` (a spec file, relative to this ``defs.yaml``) or ``models`` inline."""

    model_config = ConfigDict(extra="forbid")

    spec: str | None = None
    models: list[ModelSpec] | None = None

    @model_validator(mode="after")
    def _one_of_them(self) -> MlserveModelsAttributes:
        if (self.spec is None) == (self.models is None):
            raise ValueError("give either 'spec' (a spec file) or 'models' (inline), not both")
        return self


class MlserveModels(dg.Component):
    """Models declared as in an mlserve spec, each made into its asset graph.

    Each model becomes dataset -> validated dataset -> split -> candidates -> registered version
    -> champion -> bento, with its checks, its feedback assets, its retraining sensor and its
    ``train_<name>`` job. Locations (MLflow, prediction log, BentoML home) come from the same
    environment variables as everywhere in mlserve; the default home is ``.mlserve`` in the
    project's root.
    """

    def __init__(self, models: list[ModelSpec]) -> None:
        self.models = models

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The spec's own model as the attributes' schema: one set of rules, one editor schema."""
        return MlserveModelsAttributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> MlserveModels:
        """Resolve paths against the ``defs.yaml``'s folder and check columns now, at load time.

        ``dg check defs`` then reports a missing column or file as it reports a bad field.
        """
        if not isinstance(attributes, MlserveModelsAttributes):  # no attributes at all
            attributes = MlserveModelsAttributes()  # raises: names both ways to declare
        folder = Path(context.path)
        if attributes.spec is not None:
            return cls(load_spec(folder / attributes.spec).models)
        return cls(located(attributes.models or [], folder / "defs.yaml", folder))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The same graph as the ``MLSERVE_SPECS`` code location, homed in the project's root."""
        locations = Locations.from_env(Path(context.project_root) / ".mlserve")
        return models_definitions(locations, self.models)
