"""Choosing a candidate: fits side by side choose exactly what one fit after the other chooses."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_info

from harness.retraining import as_labels
from mlserve_assets.ml.split import split_dataset
from mlserve_assets.ml.train import select_candidates
from mlserve_assets.spec.models import ModelSpec


def _spec_and_split():
    x, y = make_classification(600, 6, n_informative=4, random_state=0)
    columns = [f"x{i}" for i in range(6)]
    frame = pd.DataFrame(x, columns=columns).assign(label=y)
    base, labelled = frame[:400], as_labels(frame[400:], seed=0)
    spec = ModelSpec.model_validate(
        {
            "name": "m",
            "source": {"kind": "file", "path": "unused.csv"},
            "target": "label",
            "task": "classification",
            "candidates": [
                {"name": "logreg", "estimator": "sklearn.linear_model.LogisticRegression"},
                {
                    "name": "forest",
                    "estimator": "sklearn.ensemble.RandomForestClassifier",
                    "params": {"n_estimators": 20, "random_state": 0},
                },
                {
                    "name": "boosting",
                    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                    "params": {"max_iter": 20, "random_state": 0},
                },
            ],
            "metric": "accuracy",
            "gate": {"threshold": 0.5},
        }
    )
    data = split_dataset(
        base, columns, "label", spec.split, labelled, spec.retrain.data, role_secret=b"k"
    )
    return spec, data


def test_fits_side_by_side_choose_what_one_at_a_time_chooses_and_leave_no_thread_setting():
    spec, data = _spec_and_split()
    before = threadpool_info()

    def chosen(workers: int) -> list[tuple[str, str, float, int]]:
        selection = select_candidates(
            spec.candidates, data, spec.scorer, spec.retrain.data, 0.1, workers=workers
        )
        return [(t.name, t.mix, t.score, t.rows) for t in selection.fitted]

    one_at_a_time = chosen(1)
    assert len(one_at_a_time) == 3 * 4  # every candidate on every mix
    assert chosen(3) == one_at_a_time
    assert threadpool_info() == before  # the native thread limits are as they were
