"""Retraining's cost as labels grow: what the ``split``, ``candidates`` assets compute, offline.

A generated classification table (``--base-rows``, default 10,000 rows of 20 features) is the
base; labels of the same concept arrive in growing numbers (``--labels``). For each count the
split, the choice (every candidate on every data mix and selection fold) and the refit of the
chosen one run with the assets' own functions, without Dagster or MLflow. Candidates: what
``mlserve init`` scaffolds (scaled logistic regression, a 200-tree forest) and histogram gradient
boosting. Seconds, and the ratio to the smallest count.
"""

from __future__ import annotations

import time

import pandas as pd
from sklearn.datasets import make_classification

from bench.report import Row
from harness.retraining import as_labels
from mlserve_assets.ml.split import split_dataset
from mlserve_assets.ml.train import refit, select_candidates
from mlserve_assets.spec.models import ModelSpec

FEATURES = [f"x{i}" for i in range(20)]
CANDIDATES = [
    {
        "name": "logreg",
        "steps": [
            {"estimator": "sklearn.preprocessing.StandardScaler"},
            {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}},
        ],
    },
    {
        "name": "random_forest",
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 200, "min_samples_leaf": 2, "random_state": 0},
    },
    {
        "name": "boosting",
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"random_state": 0},
    },
]


def measure(base_rows: int, label_counts: list[int]) -> list[Row]:
    """Each count of labels retrained one fit at a time and side by side; seconds each."""
    x, y = make_classification(
        base_rows + max(label_counts), len(FEATURES), n_informative=8, random_state=0
    )
    table = pd.DataFrame(x, columns=FEATURES).assign(label=y)
    base, stream = table[:base_rows], as_labels(table[base_rows:], seed=0)
    spec = ModelSpec.model_validate(
        {
            "name": "retraining",
            "source": {"kind": "file", "path": "generated.csv"},
            "target": "label",
            "task": "classification",
            "candidates": CANDIDATES,
            "metric": "accuracy",
            "gate": {"threshold": 0.5},
        }
    )
    rows, smallest = [], None
    for labels in sorted(label_counts):
        seconds, fits, chosen = _retrain(spec, base, stream[:labels])
        smallest = smallest or seconds
        rows.append(
            Row(
                "retraining",
                f"{base_rows:,} rows + {labels:,} labels",
                f"{seconds:.1f} s ({fits} fits, chose {chosen})",
                seconds / smallest,
            )
        )
    return rows


def _retrain(spec: ModelSpec, base: pd.DataFrame, labels: pd.DataFrame) -> tuple[float, int, str]:
    policy = spec.retrain.data
    started = time.perf_counter()
    data = split_dataset(base, FEATURES, "label", spec.split, labels, policy, role_secret=b"bench")
    selection = select_candidates(spec.candidates, data, spec.scorer, policy, spec.gate.base_weight)
    best = selection.best(spec.scorer)
    refit(spec.candidates, best.name, best.mix, data, policy)
    return time.perf_counter() - started, selection.fits + 1, f"{best.name}/{best.mix}"
