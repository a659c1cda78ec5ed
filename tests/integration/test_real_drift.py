"""The loop on a real table's seasons: Seattle's daily weather in time order, default settings.

The table is ``seattle-weather.csv`` from the ``vega_datasets`` package (MIT licence; the data
are NOAA's daily records for Seattle, 2012-2015, public domain), read from the installed wheel:
nothing downloads. A user scaffolds the spec as ``mlserve init`` does (two candidates, the gate,
the split by the date column) from the first three months alone, winter, to predict each day's
highest temperature; the service then answers the next twenty-one months in time order, a month a
round, each month's labels arriving with the next month's requests. Nothing else is sent, and the
spec keeps every retraining default: the daemon's sensor must retrain, the gate decide and the
service follow.

Judged on the two years after the traffic (2014-2015), which no model and no label saw: the
served model's error against a model trained on all the history up to the end of the traffic
(the better of the spec's two candidates, fitted independently with scikit-learn). The first
model, trained on winter alone, is far behind there: the drift is real.

The bound is 15%, not the 5% the loop aims at: which labels gate and which train is a hash of
random prediction ids, and how many labels the last retraining saw depends on when its run
started. Live runs here ended 0.9%, 1.3% and 4.4% behind; the same retraining offline over six
draws of ids was 2.8-6.9% behind at 518 labels and, in one draw at 460, 14% (a forest chosen on
the labels alone). The figures are recorded (``record_property``) in every run.
"""

from __future__ import annotations

import time
from importlib.resources import files

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from harness.loop import closed_loop
from mlserve_assets.cli.scaffold import scaffold_spec
from serving.store.tables import predictions

TARGET = "temp_max"
NUMBERS = ["precipitation", "temp_min", "wind"]
FIRST_MODEL_UNTIL = "2012-04-01"  # the table the user starts with: January to March 2012
TRAFFIC_UNTIL = "2014-01-01"  # then served, a month a round, until the end of 2013
WITHIN = 1.15


def _table() -> pd.DataFrame:
    path = files("vega_datasets") / "_data" / "seattle-weather.csv"
    return pd.read_csv(path)


def _rmse(predicted, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted, dtype=float) - truth.to_numpy()) ** 2)))


def _all_history_rmse(history: pd.DataFrame, after: pd.DataFrame) -> float:
    """The better of ridge and a forest (init's candidates) fitted on every row up to the end."""
    features = [*NUMBERS, "weather"]
    errors = []
    for estimator in (Ridge(), RandomForestRegressor(200, min_samples_leaf=2, random_state=0)):
        prepare = ColumnTransformer(
            [
                ("numbers", StandardScaler(), NUMBERS),
                ("weather", OneHotEncoder(handle_unknown="ignore"), ["weather"]),
            ]
        )
        model = make_pipeline(prepare, estimator).fit(history[features], history[TARGET])
        errors.append(_rmse(model.predict(after[features]), after[TARGET]))
    return min(errors)


def test_the_loop_follows_a_real_seasonal_drift_close_to_a_model_of_all_the_history(
    tmp_path, record_property
):
    table = _table()
    dates = pd.to_datetime(table["date"])
    assert dates.is_monotonic_increasing
    first = table[dates < FIRST_MODEL_UNTIL]
    traffic = table[(dates >= FIRST_MODEL_UNTIL) & (dates < TRAFFIC_UNTIL)]
    after = table[dates >= TRAFFIC_UNTIL]
    source = tmp_path / "seattle.csv"
    first.to_csv(source, index=False)
    [model] = scaffold_spec(first, "seattle", str(source), TARGET)["models"]
    assert model["split"] == {"by": "date"}
    reference = _all_history_rmse(table[dates < TRAFFIC_UNTIL], after)

    with closed_loop(tmp_path, model=model) as loop:
        assert "date" not in loop.features  # the split's column, not a feature
        stale = _rmse(_answers(loop, after), after[TARGET])
        months = dates[traffic.index].dt.to_period("M")
        crossed = loop.feed(
            (rows, rows[TARGET].to_numpy()) for _, rows in traffic.groupby(months, sort=True)
        )
        crossed_at = time.time() - (time.monotonic() - crossed)
        loop.wait(loop.settled, "the loop did not settle")
        loop.wait(
            lambda: _answers(loop, after[:1], "model_version") == [loop.champion()],
            "the service did not follow the champion",
        )
        served = _rmse(_answers(loop, after), after[TARGET])
        query = sa.select(sa.func.min(predictions.c.created_at)).where(
            predictions.c.model_name == "seattle", predictions.c.model_version != "1"
        )
        with loop.store.engine.connect() as conn:
            first_new = conn.execute(query).scalar_one()
        record_property(
            "rmse_first_served_all_history", f"{stale:.3f} {served:.3f} {reference:.3f}"
        )
        record_property("seconds_threshold_to_new_answer", round(first_new - crossed_at, 1))
        record_property("versions", loop.summary())
        assert stale > 1.2 * reference, "the first model is not behind: no drift to follow"
        assert loop.champion() != "1", loop.summary()
        assert served <= WITHIN * reference, (stale, served, reference, loop.summary())


def _answers(loop, rows: pd.DataFrame, key: str = "prediction") -> list:
    """The service's ``key`` for each row, in requests of at most 250 records."""
    return [
        answer[key]
        for start in range(0, len(rows), 250)
        for answer in loop.predict(rows[start : start + 250])
    ]
