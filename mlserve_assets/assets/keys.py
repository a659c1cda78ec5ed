"""What every asset of one model shares: a key prefix, a group and a tag."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlserve_assets.spec.models import ModelSpec


@dataclass(frozen=True)
class ModelAssets:
    """One model's naming: keys ``[model, stage]``, one group per model."""

    spec: ModelSpec

    @property
    def name(self) -> str:
        """The model's name, as the spec declares it."""
        return self.spec.name

    def key(self, stage: str) -> dg.AssetKey:
        """The key of one stage's asset."""
        return dg.AssetKey([self.name, stage])

    def ins(self, *stages: str) -> dict[str, dg.AssetIn]:
        """Inputs from this model's stages, each under its stage's name."""
        return {stage: dg.AssetIn(self.key(stage)) for stage in stages}

    def common(self) -> dict[str, Any]:
        """Arguments every asset of the model takes."""
        common: dict[str, Any] = {"group_name": self.name, "tags": {"mlserve/model": self.name}}
        if self.spec.description:  # the spec's words on every asset of the model
            common["metadata"] = {"model": self.spec.description}
        return common
