"""Data mixes: the ways retraining combines base rows with labelled feedback.

After a real shift a plain union lets the old rows outvote the new; without one the base rows
help. Which mix wins is left to the selection labels (``policy: auto``) or named in the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlserve_assets.ml.split import DatasetSplit, Rows
from mlserve_assets.spec.models import RetrainData


@dataclass(frozen=True)
class TrainingSet:
    """Rows to fit on, with a weight per row where the mix gives one."""

    rows: Rows
    weight: np.ndarray | None = None


@dataclass(frozen=True)
class Mix:
    """One way of combining base rows and feedback for training."""

    name: str
    needs_weights: bool = False

    def build(self, base: Rows, feedback: Rows, policy: RetrainData) -> TrainingSet:
        """The training set this mix makes from ``base`` and time-ordered ``feedback``."""
        if self.name == "base":
            return TrainingSet(base)
        if self.name == "union":
            return TrainingSet(Rows.join(base, feedback))
        if self.name == "weighted":
            weight = np.concatenate(
                [np.ones(len(base)), np.full(len(feedback), policy.feedback_weight)]
            )
            return TrainingSet(Rows.join(base, feedback), weight)
        if self.name == "recent":
            keep = max(1, math.ceil(len(feedback) * policy.recent_fraction))
            return TrainingSet(Rows(feedback.x.tail(keep), feedback.y.tail(keep)))
        return TrainingSet(feedback)  # feedback_only


MIXES = {
    m.name: m for m in (Mix("union"), Mix("weighted", True), Mix("recent"), Mix("feedback_only"))
}
BASE_ONLY = Mix("base")


def mixes_for(policy: RetrainData, data: DatasetSplit) -> list[Mix]:
    """The mixes to try: base rows alone without feedback, else the policy's (all for auto)."""
    if not data.has_feedback:
        return [BASE_ONLY]
    return list(MIXES.values()) if policy.policy == "auto" else [MIXES[policy.policy]]


def final_training_set(mix_name: str, data: DatasetSplit, policy: RetrainData) -> TrainingSet:
    """The chosen mix over train and selection rows together: the final model sees all of them."""
    mix = BASE_ONLY if mix_name == "base" else MIXES[mix_name]
    base = Rows.join(data.base_train, data.base_select)
    return mix.build(base, data.feedback_fit, policy)
