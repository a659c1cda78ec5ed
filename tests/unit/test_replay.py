"""Replay's arithmetic: the served answers' score, each version's, ranked, paired intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, mean_squared_error

from mlserve_assets.ml.metrics import get_metric
from mlserve_assets.ml.replay import replay, window


def _requests(truth: np.ndarray, answered: np.ndarray) -> pd.DataFrame:
    n = len(truth)
    return pd.DataFrame(
        {
            "ground_truth": truth,
            "prediction": answered,
            "model_version": ["1"] * (n // 2) + ["2"] * (n - n // 2),
            "created_at": np.arange(n, dtype=float),
        }
    )


def test_the_served_score_is_the_logged_answers_and_a_better_version_ranks_first():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    answered = np.where(rng.uniform(size=400) < 0.8, truth, 1 - truth)
    better = np.where(rng.uniform(size=400) < 0.95, truth, 1 - truth)
    report = replay(
        "m",
        get_metric("accuracy"),
        _requests(truth, answered),
        {
            "3": answered.copy(),
            "4": better,
        },
    )
    assert report.served == accuracy_score(truth, answered)
    assert report.served_by == {"1": 200, "2": 200}
    assert [v.version for v in report.versions] == ["4", "3"]
    best, same = report.versions
    assert best.score == accuracy_score(truth, better)
    assert best.gain == best.score - report.served and best.interval[0] > 0
    # The served answers replayed: no gain, and a paired interval of exactly none.
    assert (same.gain, same.interval) == (0.0, (0.0, 0.0))


def test_lower_is_better_ranks_the_smaller_error_first():
    truth = np.linspace(0, 10, 50)
    report = replay(
        "r",
        get_metric("rmse"),
        _requests(truth, truth + 1.0),
        {
            "far": truth + 2.0,
            "near": truth + 0.5,
        },
    )
    assert [v.version for v in report.versions] == ["near", "far"]
    assert report.served == np.sqrt(mean_squared_error(truth, truth + 1.0))
    assert report.versions[0].gain > 0 > report.versions[1].gain


def test_the_window_is_requests_since_a_time_then_the_latest_labelled():
    requests = _requests(np.zeros(10), np.zeros(10))
    assert window(requests, None, 4.0)["created_at"].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert window(requests, 3, None)["created_at"].tolist() == [7.0, 8.0, 9.0]
    assert window(requests, 3, 8.5)["created_at"].tolist() == [9.0]
