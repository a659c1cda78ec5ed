"""The drift model's first retraining, offline, repeated over draws of the prediction ids.

Each label's role (gate, or one of the selection folds) is a hash of its prediction id, and the
service draws ids at random: the same stream is split differently in every run, and a loop test
sees one draw. This repeats what the ``split``, ``candidates`` and ``champion`` assets do (the same
functions, without Dagster or MLflow) for many draws, so the bench reports how often the gate
holds and the choice falls short, and a test pins a set of draws.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from harness.loop import BATCH, drift_model
from mlserve_assets.cli.simulation import FEATURES, SCENARIOS, concept_rows, post_shift_model
from mlserve_assets.ml.gate import judge
from mlserve_assets.ml.split import DatasetSplit, split_dataset
from mlserve_assets.ml.train import refit, select_candidates
from mlserve_assets.spec.models import ModelSpec

SHORT_OF_ORACLE = 0.03  # the loop tests' bound: the retrained model within this of the oracle
OWNER = "owner"
"""The key the labels come from unless a draw says otherwise: trusted, as the local key is."""
POISON = "poison"
"""The stream of one attacker's wrong labels: near-copies of the base rows, each label flipped."""

# The prediction log keeps a random one; draws keep theirs fixed, so a draw is the same every run.
ROLE_SECRET = b"mlserve-retraining-draws"


@dataclass(frozen=True)
class Outcome:
    """One draw's retraining: the gate's verdict and what the challenger is worth."""

    promoted: bool
    accuracy: float
    """The challenger's accuracy on the settled concept."""
    choice: str
    reason: str


class DriftRetraining:
    """The champion trained on the base rows, and ``labels`` of a scenario's stream to retrain on.

    The stream is the loop tests' (rounds of ``BATCH`` with the same seeds, labelled in order), so
    a draw here is a draw of theirs.
    """

    def __init__(self, scenario: str, labels: int, **retrain: object) -> None:
        self.spec = ModelSpec.model_validate(drift_model(**retrain))
        self.base = pd.read_csv(self.spec.source.path)
        if scenario == POISON:  # the concept does not move; the labels lie
            self.stream = poisoned(self.base, labels)
            self.probe = self.base.sample(1000, replace=True, random_state=99)
            self.oracle = 1.0
        else:
            shift = SCENARIOS[scenario]
            rounds = [concept_rows(BATCH, shift.weights(n), seed=n) for n in range(labels // BATCH)]
            self.stream = pd.concat(rounds, ignore_index=True)
            self.probe = concept_rows(1000, shift.final(), seed=99)
            self.oracle = self.accuracy(post_shift_model(shift))
        self.champion = self._retrain(None)[0]

    def draw(
        self,
        seed: int,
        senders: tuple[str, ...] = (OWNER,),
        trusted: frozenset[str] = frozenset({OWNER}),
    ) -> Outcome:
        """Retrain with prediction ids drawn from ``seed``; the gate judges against the champion.

        The labels come from ``senders`` in turn; the gate trusts ``trusted``.
        """
        feedback = as_labels(self.stream, seed, senders)
        challenger, choice, data = self._retrain(feedback)
        decision, _ = judge(
            self.spec.scorer, self.spec.gate, data, challenger, self.champion, trusted=trusted
        )
        return Outcome(decision.promote, self.accuracy(challenger), choice, decision.reason)

    def _retrain(self, feedback: pd.DataFrame | None) -> tuple[BaseEstimator, str, DatasetSplit]:
        """The ``split`` and ``candidates`` assets' model, without MLflow: chosen, then refitted."""
        spec, policy = self.spec, self.spec.retrain.data
        data = split_dataset(
            self.base, FEATURES, spec.target, spec.split, feedback, policy, role_secret=ROLE_SECRET
        )
        selection = select_candidates(
            spec.candidates, data, spec.scorer, policy, spec.gate.base_weight
        )
        best = selection.best(spec.scorer)
        model = refit(spec.candidates, best.name, best.mix, data, policy)[0]
        return model, f"{best.name}/{best.mix}", data

    def accuracy(self, model: BaseEstimator) -> float:
        """A model's accuracy on the settled concept."""
        return float(np.mean(model.predict(self.probe[FEATURES]) == self.probe["label"]))


def as_labels(rows: pd.DataFrame, seed: int, senders: tuple[str, ...] = (OWNER,)) -> pd.DataFrame:
    """``rows`` as the ``feedback`` asset gives labels, arriving in order.

    Their prediction ids are drawn from ``seed`` (so each label's role is a draw), and
    ``senders`` send them in turn.
    """
    ids = np.random.default_rng(seed)
    n = len(rows)
    return rows.reset_index(drop=True).assign(
        prediction_id=[str(uuid.UUID(bytes=ids.bytes(16))) for _ in range(n)],
        received_at=np.arange(n, dtype=float),
        key_id=[senders[i % len(senders)] for i in range(n)],
    )


def poisoned(base: pd.DataFrame, labels: int) -> pd.DataFrame:
    """``labels`` near-copies of base rows (each feature moved by 1% of a unit), labels flipped.

    What one key with predict and feedback scopes can send: inputs it chooses, answers it says
    are the truth. Retrained on them, a model learns the opposite concept.
    """
    rng = np.random.default_rng(7)
    rows = base.sample(labels, replace=True, random_state=7).reset_index(drop=True)
    rows[FEATURES] = (rows[FEATURES] + rng.normal(scale=0.01, size=(labels, 4))).round(4)
    return rows.assign(label=1 - rows["label"])
