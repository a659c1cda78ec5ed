"""Joining predictions with their labels, live metrics per version, and mixing into training."""

from __future__ import annotations

import hmac
import json
import math
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from harness.servers import child_env
from mlserve_assets.ml.labels import feature_frame, feedback_role, live_metrics
from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.ml.mixes import mixes_for
from mlserve_assets.ml.split import split_dataset
from mlserve_assets.spec.models import RetrainData, Split
from serving.store.predictions import PredictionStore
from serving.store.tables import DuplicateFeedbackError, PredictionRow, UnknownPredictionError

SECRET = b"a test log's role secret"


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


def test_outcomes_hold_one_versions_labelled_answers_and_nothing_else(store):
    store.add_feedback("m", _predict(store, "1", 0.1, 1), 0)
    store.add_feedback("m", _predict(store, "2", 0.2, 0), 0)
    _predict(store, "2", 0.3, 1)  # never labelled
    store.add_feedback("other", _predict(store, "2", 0.4, 1, model="other"), 1)
    outcomes = store.outcomes("m", "2")
    assert outcomes.to_dict("records") == [
        {"model_version": "2", "prediction": 0, "ground_truth": 0}
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


def _base(n: int) -> pd.DataFrame:
    return _feedback(n).drop(columns=["prediction_id", "received_at"])


def test_every_feedback_row_gets_one_role_by_its_id():
    fb = _feedback(600)
    rules = RetrainData(holdout_fraction=0.3, selection_folds=4)
    data = split_dataset(_base(200), ["a", "b"], "y", Split(), fb, rules, role_secret=SECRET)
    # Independently: each id's bucket on the keyed hash's range, cut by hand.
    buckets = fb["prediction_id"].map(
        lambda i: int(hmac.new(SECRET, i.encode(), "sha256").hexdigest()[:8], 16) / 0xFFFFFFFF
    )
    gate = buckets < 0.3
    assert sorted(data.feedback_gate.x["a"]) == sorted(fb.loc[gate, "a"])
    # The rest, oldest first, each in the fold its bucket's quarter of [0.3, 1) names.
    assert data.feedback_fit.x["a"].tolist() == fb.loc[~gate, "a"].tolist()
    assert list(data.feedback_folds) == ((buckets[~gate] - 0.3) / 0.7 * 4).astype(int).tolist()
    assert np.allclose(
        [gate.mean(), *(np.bincount(data.feedback_folds) / 600)], [0.3, *[0.7 / 4] * 4], atol=0.06
    )
    assert data.feedback_watermark == 599.0
    # The same labels split again (another retraining) land in the same roles.
    again = split_dataset(
        _base(200), ["a", "b"], "y", Split(), fb.sample(frac=1.0), rules, role_secret=SECRET
    )
    assert again.feedback_gate.x.equals(data.feedback_gate.x)
    assert again.feedback_folds == data.feedback_folds


def test_each_fit_label_chooses_in_one_round_and_fits_in_the_others():
    data = split_dataset(_base(200), ["a", "b"], "y", Split(), _feedback(300), role_secret=SECRET)
    rounds = list(data.selection_rounds())
    assert len(rounds) == RetrainData().selection_folds
    fit_ids = data.feedback_fit.x["a"]
    chosen_by = pd.concat([held.x["a"] for _, held in rounds])
    assert sorted(chosen_by) == sorted(fit_ids)  # each label chooses exactly once
    for fit_on, held in rounds:
        assert not set(fit_on.x["a"]) & set(held.x["a"])
        assert fit_on.x["a"].tolist() == [a for a in fit_ids if a not in set(held.x["a"])]
    without = split_dataset(_base(200), ["a", "b"], "y", Split())
    [(fit_on, held)] = without.selection_rounds()
    assert len(fit_on) == len(held) == 0


def test_roles_are_keyed_by_the_logs_secret():
    ids = [uuid.uuid4().hex for _ in range(300)]
    ours = [feedback_role(i, 0.3, 5, SECRET) for i in ids]
    theirs = [feedback_role(i, 0.3, 5, b"a guess at the secret") for i in ids]
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) < 0.5 * len(ids)


def test_roles_are_the_same_in_another_process():
    ids = [uuid.uuid4().hex for _ in range(300)]
    here = [feedback_role(i, 0.3, 5, b"k") for i in ids]
    code = (
        "import sys, json\n"
        "from mlserve_assets.ml.labels import feedback_role\n"
        "ids = json.load(sys.stdin)\n"
        "print(json.dumps([feedback_role(i, 0.3, 5, b'k') for i in ids]))\n"
    )
    # A fresh interpreter with its own hash seed: Python's hash() would differ, sha256 must not.
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        check=True,
        env=child_env({"PYTHONHASHSEED": "12345"}),
    )
    assert json.loads(done.stdout) == here


@pytest.mark.parametrize("policy", ["union", "weighted", "recent", "feedback_only"])
def test_each_mix_builds_the_training_rows_it_names(policy):
    base = split_dataset(_base(200), ["a", "b"], "y", Split(), _feedback(300), role_secret=SECRET)
    rules = RetrainData(policy=policy, feedback_weight=4.0, recent_fraction=0.5)
    [mix] = mixes_for(rules, base)
    built = mix.build(base.base_train, base.feedback_fit, rules)
    fb = base.feedback_fit
    if policy in ("union", "weighted"):
        assert len(built.rows) == len(base.base_train) + len(fb)
    if policy == "weighted":
        assert built.weight.tolist() == [1.0] * len(base.base_train) + [4.0] * len(fb)
    else:
        assert built.weight is None
    if policy == "recent":  # the newer half of the feedback only
        assert built.rows.x.equals(fb.x.tail(math.ceil(len(fb) / 2)))
    if policy == "feedback_only":
        assert built.rows.x.equals(fb.x)


def test_auto_tries_every_mix_and_no_feedback_trains_on_base_rows_only():
    with_labels = split_dataset(
        _base(200), ["a", "b"], "y", Split(), _feedback(300), role_secret=SECRET
    )
    assert [m.name for m in mixes_for(RetrainData(), with_labels)] == [
        "union",
        "weighted",
        "recent",
        "feedback_only",
    ]
    without = split_dataset(_base(200), ["a", "b"], "y", Split(), _feedback(0), role_secret=SECRET)
    assert [m.name for m in mixes_for(RetrainData(), without)] == ["base"]
    assert not without.has_feedback


def test_the_selection_score_weighs_recent_labels_against_base_rows_like_the_gate():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    from mlserve_assets.ml.train import selection_score

    data = split_dataset(_base(200), ["a", "b"], "y", Split(), _feedback(300), role_secret=SECRET)
    model = LogisticRegression().fit(data.base_train.x, data.base_train.y)
    _, held = next(data.selection_rounds())
    recent = accuracy_score(held.y, model.predict(held.x))
    base = accuracy_score(data.base_select.y, model.predict(data.base_select.x))
    accuracy = get_metric("accuracy")
    assert selection_score(model, held, data, accuracy, 0.25) == pytest.approx(
        0.75 * recent + 0.25 * base
    )
    without = split_dataset(_base(200), ["a", "b"], "y", Split())
    _, none = next(without.selection_rounds())
    assert selection_score(model, none, without, accuracy, 0.25) == pytest.approx(
        accuracy_score(without.base_select.y, model.predict(without.base_select.x))
    )
