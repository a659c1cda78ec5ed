"""Joining predictions with their labels, live metrics per version, and mixing into training."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
import pytest

from mlserve_assets.ml.feedback import feature_frame, in_holdout, live_metrics
from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.ml.train import split_dataset, with_feedback
from mlserve_assets.spec import RetrainData, Split
from serving.log_schema import DuplicateFeedbackError, PredictionRow, UnknownPredictionError
from serving.prediction_store import PredictionStore


@pytest.fixture
def store(tmp_path):
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    store.create_schema()
    yield store
    store.dispose()


def _predict(store, version: str, x: float, prediction: int, model: str = "m") -> str:
    row = PredictionRow(
        uuid.uuid4().hex, time.time(), model, version, {"a": x, "b": -x}, prediction
    )
    store.insert_predictions([row])
    return row.prediction_id


def test_join_keeps_only_labelled_predictions_of_the_model(store):
    labelled_id = _predict(store, "1", 0.5, 1)
    _predict(store, "1", 0.7, 0)  # never labelled
    other = _predict(store, "1", 0.9, 1, model="other")
    store.add_feedback("m", labelled_id, 1)
    store.add_feedback("other", other, 0)
    frame = store.labelled("m")
    assert frame["prediction_id"].tolist() == [labelled_id]
    assert frame["features"].iloc[0] == {"a": 0.5, "b": -0.5}


def test_live_metric_per_version(store):
    for x, truth in [(0.1, 1), (0.2, 1), (0.3, 0), (0.4, 0)]:
        store.add_feedback("m", _predict(store, "1", x, 1), truth)  # v1 always says 1: 2 of 4 right
    for x in (0.5, 0.6):
        store.add_feedback("m", _predict(store, "2", x, 0), 0)  # v2: 2 of 2 right
    live = live_metrics(store.labelled("m"), get_metric("accuracy"))
    assert live.to_dict("records") == [
        {"model_version": "1", "labelled": 4, "accuracy": 0.5},
        {"model_version": "2", "labelled": 2, "accuracy": 1.0},
    ]


def test_a_second_label_is_refused_and_the_first_kept(store):
    pid = _predict(store, "1", 0.3, 1)
    store.add_feedback("m", pid, 1)
    with pytest.raises(DuplicateFeedbackError):
        store.add_feedback("m", pid, 0)
    assert store.labelled("m")["ground_truth"].tolist() == [1]


def test_a_label_for_another_models_prediction_is_unknown_and_not_stored(store):
    theirs = _predict(store, "1", 0.3, 1, model="other")
    with pytest.raises(UnknownPredictionError):
        store.add_feedback("m", theirs, 123.4)
    assert store.labelled("other").empty
    assert store.labelled("m").empty


def test_the_same_input_labelled_twice_counts_once_with_the_latest_label(store):
    first = _predict(store, "1", 0.3, 1)
    second = _predict(store, "2", 0.3, 1)
    store.add_feedback("m", first, 0)
    store.add_feedback("m", second, 1)
    rows = feature_frame(store.labelled("m"), ["a", "b"], "y")
    assert rows[["a", "y", "prediction_id"]].to_dict("records") == [
        {"a": 0.3, "y": 1, "prediction_id": second}
    ]


def _feedback(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "y": rng.integers(0, 2, n),
            "prediction_id": [uuid.uuid4().hex for _ in range(n)],
            "received_at": np.arange(n, dtype=float),
        }
    )


@pytest.mark.parametrize("policy", ["union", "weighted", "feedback_only"])
def test_policies_mix_feedback_and_hold_out_a_stable_share(policy):
    base_frame = _feedback(200).drop(columns=["prediction_id", "received_at"])
    base = split_dataset(base_frame, ["a", "b"], "y", Split(test_size=0.25, seed=0))
    fb = _feedback(100)
    rules = RetrainData(policy=policy, feedback_weight=4.0, holdout_fraction=0.3)
    mixed = with_feedback(base, fb, "y", rules)

    held = fb["prediction_id"].map(lambda i: in_holdout(i, 0.3))
    assert mixed.feedback_test_rows == held.sum() > 0
    assert mixed.feedback_train_rows == (~held).sum()
    assert mixed.feedback_watermark == 99.0
    if policy == "feedback_only":
        assert len(mixed.x_train) == mixed.feedback_train_rows
        assert len(mixed.x_test) == mixed.feedback_test_rows
    else:
        assert len(mixed.x_train) == len(base.x_train) + mixed.feedback_train_rows
        assert len(mixed.x_test) == len(base.x_test) + mixed.feedback_test_rows
    if policy == "weighted":
        assert mixed.train_weight[: len(base.x_train)].tolist() == [1.0] * len(base.x_train)
        assert set(mixed.train_weight[len(base.x_train) :]) == {4.0}
    else:
        assert mixed.train_weight is None
    assert with_feedback(base, fb, "y", rules).x_test.equals(mixed.x_test)  # same split again


def test_no_feedback_leaves_the_base_split():
    base_frame = _feedback(100).drop(columns=["prediction_id", "received_at"])
    base = split_dataset(base_frame, ["a", "b"], "y", Split())
    assert with_feedback(base, _feedback(0), "y", RetrainData()) is base
