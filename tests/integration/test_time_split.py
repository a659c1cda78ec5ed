"""A time split through a real training: the newest rows judge, the time column is no feature.

The table's concept flips for its newest quarter: trained on the older rows, a model that is
judged on the newest ones must fail the gate, while a random split (the newest rows spread
over every role) would pass it. Which one happens says which rows judged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.project import materialization_metadata, train, write_spec


def _flipping_table(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(size=n)
    newest = np.arange(n) >= int(n * 0.75)
    y = np.where(newest, x < 0, x > 0).astype(int)
    day = pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    order = rng.permutation(n)  # the file is not in time order
    return pd.DataFrame({"day": day[order], "x": x[order], "y": y[order]})


@pytest.mark.parametrize("by", ["day", None], ids=["by time", "at random"])
def test_the_newest_rows_judge_under_a_time_split(settings, tmp_path, by):
    _flipping_table().to_csv(tmp_path / "t.csv", index=False)
    model = {
        "name": "t",
        "source": {"kind": "file", "path": "t.csv"},
        "target": "y",
        "task": "classification",
        "candidates": [{"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}],
        "metric": "accuracy",
        "gate": {"threshold": 0.5},
        "split": {"by": by} if by else {},
        **({} if by else {"features": ["x"]}),  # at random, day is left out by hand
    }
    result = train(settings, [write_spec(tmp_path / "t.yaml", [model])], bentos=())
    assert result.success
    split = materialization_metadata(result, "t", "split")
    assert split["features"] == 1  # x only: the time column orders rows, it does not predict
    assert split["base_test_rows"] == 100
    decided = materialization_metadata(result, "t", "champion")
    if by:  # judged on the flipped quarter only
        assert decided["promoted"] is False
        assert decided["challenger_metric"] < 0.2, decided
    else:  # judged on rows of both concepts, mostly the older one
        assert decided["promoted"] is True
        assert decided["challenger_metric"] > 0.55, decided
