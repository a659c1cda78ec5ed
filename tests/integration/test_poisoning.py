"""One key's wrong labels cannot move the champion; drift fixes still promote.

The attack: one key with predict and feedback scopes sends 300 near-copies of the base rows and
says each answer's opposite is the truth (``harness.retraining.poisoned``). Unbounded, its labels
are the gate's decisive evidence and a model at about 5% accuracy is promoted (the control
below); the gate's bound on one source (``gate.source_share``) holds it. The loop tests' drift
scenarios, labelled by the owner's key, recover in the same run of the suite.
"""

from __future__ import annotations

import time
import uuid

import pandas as pd
from mlflow import MlflowClient

from harness.loop import drift_model
from harness.project import materialization_metadata, train, write_spec
from harness.retraining import POISON, DriftRetraining, poisoned
from mlserve_assets.cli.simulation import FEATURES
from mlserve_assets.settings import Settings
from serving.store.predictions import PredictionStore
from serving.store.tables import PredictionRow

MALLORY = "0a1b2c3d4e5f"  # the attacker's key id, as the service records it


def _log_poison(settings: Settings, labels: int) -> None:
    """The attack as the service logs it: predictions of v1 and their labels, sent by MALLORY."""
    rows = poisoned(pd.read_csv(drift_model()["source"]["path"]), labels)
    store = PredictionStore(settings.predictions_url)
    store.create_schema()
    logged = [
        PredictionRow(uuid.uuid4().hex, time.time(), "drift", "1", record, 1 - label)
        for record, label in zip(rows[FEATURES].to_dict("records"), rows["label"], strict=True)
    ]
    store.insert_predictions(logged)
    for row, label in zip(logged, rows["label"], strict=True):
        store.add_feedback("drift", row.prediction_id, int(label), MALLORY)
    store.dispose()


def test_one_keys_wrong_labels_are_held_and_trusting_the_key_is_what_would_let_them_in(
    settings: Settings, client: MlflowClient, tmp_path
):
    spec = write_spec(tmp_path / "drift.yaml", [drift_model()])
    assert train(settings, [spec], "train_drift", bentos=()).success
    _log_poison(settings, 300)

    held = train(settings, [spec], "train_drift", bentos=())
    assert held.success
    decision = materialization_metadata(held, "drift", "champion")
    assert decision["promoted"] is False, decision["reason"]
    assert decision[f"recent_key_{MALLORY}_weight"] == 0.45  # (1 - base_weight) x source_share
    assert decision["base_weight"] == 0.55
    assert str(client.get_model_version_by_alias("drift", "champion").version) == "1"

    # The same labels from a key the spec trusts decide alone: the poisoned model would serve.
    trusting = drift_model()
    trusting["gate"] = {**trusting["gate"], "trusted_sources": [MALLORY]}
    trusting_spec = write_spec(tmp_path / "trusting.yaml", [trusting])
    promoted = train(settings, [trusting_spec], "train_drift", bentos=())
    assert materialization_metadata(promoted, "drift", "champion")["promoted"] is True


def test_poisoning_is_held_in_every_draw_and_two_keys_drift_labels_still_promote():
    poison = DriftRetraining(POISON, 300)
    for seed in range(3):
        outcome = poison.draw(seed, senders=(MALLORY,), trusted=frozenset())
        assert not outcome.promoted, (seed, outcome)
    # Drift labelled by two keys, neither trusted: each carries half, nothing goes to the base.
    drift = DriftRetraining("rotation", 200)
    for seed in range(3):
        outcome = drift.draw(seed, senders=("labeller-a", "labeller-b"), trusted=frozenset())
        assert outcome.promoted, (seed, outcome)
