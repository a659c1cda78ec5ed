"""The loop on a real table's seasons: Seattle's daily weather served in time order.

The table is ``seattle-weather.csv`` from the ``vega_datasets`` package (MIT licence; the data
are NOAA's daily records for Seattle, 2012-2015, public domain), read from the installed wheel:
nothing downloads. A user scaffolds the spec as ``mlserve init`` does (two candidates, the gate,
the split by the date column) from the first three months alone, winter, to predict each day's
highest temperature; the service then answers the next twenty-one months in time order, a month
a round, each month's labels arriving with the next month's requests. Nothing else is sent, and
the spec keeps every retraining default.

Judged on the two years after the traffic (2014-2015), which no model and no label saw, against
a model trained on all the history up to the end of the traffic: the better of the spec's two
candidates, fitted here with scikit-learn alone. ``test_real_drift.py`` asserts on a run;
``python -m harness.seasons PNG`` plots one for the README.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

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
from serving.registry import Tag
from serving.store.tables import prediction_batches

NAME = "seattle"
TARGET = "temp_max"
NUMBERS = ["precipitation", "temp_min", "wind"]
FIRST_MODEL_UNTIL = "2012-04-01"  # the table the user starts with: January to March 2012
TRAFFIC_UNTIL = "2014-01-01"  # then served, a month a round, until the end of 2013


@dataclass(frozen=True)
class Seasons:
    """One run's figures: RMSE in °C on the period after the traffic, and the loop's course."""

    first: float
    """The first model's (trained on winter) error after the traffic."""
    served: float
    """The error of what serves once the loop has settled."""
    all_history: float
    split_by: str | None
    """What the scaffolded spec splits by."""
    features: list[str]
    """What the served model takes."""
    champion: str
    seconds_to_new_answer: float | None
    """From the labels crossing the sensor's threshold to the first answer of a new version
    (None when no new version answered)."""
    versions: str
    """Each version's gate outcome and labels used (``Loop.summary``)."""
    decisions: list[str]
    """Each version's candidate and data mix, and what the gate said."""
    months: pd.DataFrame
    """Per month of traffic: the served answers' RMSE, the first model's, who answered."""


def table() -> pd.DataFrame:
    """The whole table, oldest day first."""
    return pd.read_csv(files("vega_datasets") / "_data" / "seattle-weather.csv")


def rmse(predicted, truth: pd.Series) -> float:
    """Root mean squared error, in the target's unit."""
    return float(np.sqrt(np.mean((np.asarray(predicted, dtype=float) - truth.to_numpy()) ** 2)))


def all_history_rmse(history: pd.DataFrame, after: pd.DataFrame) -> float:
    """The better of ridge and a forest (init's candidates) fitted on every row of ``history``."""
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
        errors.append(rmse(model.predict(after[features]), after[TARGET]))
    return min(errors)


def run(folder: Path, pause: float = 1.0) -> Seasons:
    """The loop through the seasons, with the real daemon; its figures.

    A month is served every ``pause`` seconds: at one, the traffic is over before the first
    retraining answers (the test judges what serves after it); the README's figure gives the loop
    the time to follow within the traffic.
    """
    rows = table()
    dates = pd.to_datetime(rows["date"])
    assert dates.is_monotonic_increasing
    first = rows[dates < FIRST_MODEL_UNTIL]
    traffic = rows[(dates >= FIRST_MODEL_UNTIL) & (dates < TRAFFIC_UNTIL)]
    after = rows[dates >= TRAFFIC_UNTIL]
    source = folder / f"{NAME}.csv"
    first.to_csv(source, index=False)
    [model] = scaffold_spec(first, NAME, str(source), TARGET)["models"]
    months = [m for _, m in traffic.groupby(dates[traffic.index].dt.to_period("M"), sort=True)]
    with closed_loop(folder, model=model) as loop:

        def answers(frame: pd.DataFrame, key: str = "prediction") -> list:
            # Requests of at most 250 records, well inside the service's limit.
            batches = (frame[i : i + 250] for i in range(0, len(frame), 250))
            return [a[key] for batch in batches for a in loop.predict(batch)]

        first_error = rmse(answers(after), after[TARGET])
        first_by_month = [rmse(answers(m), m[TARGET]) for m in months]
        fed = loop.feed(((m, m[TARGET].to_numpy()) for m in months), pause)
        crossed_at = time.time() - (time.monotonic() - fed.crossed)
        # The traffic can end before a new version serves: ask on until one answers (or the loop
        # rests without one), so the first new answer is logged when it could first be given.
        loop.wait(
            lambda: answers(after[:1], "model_version") != ["1"] or loop.settled(),
            "no new version answered",
        )
        loop.wait(loop.settled, "the loop did not settle")
        loop.wait(
            lambda: answers(after[:1], "model_version") == [loop.champion()],
            "the service did not follow the champion",
        )
        served = rmse(answers(after), after[TARGET])
        query = sa.select(sa.func.min(prediction_batches.c.created_at)).where(
            prediction_batches.c.model_name == NAME, prediction_batches.c.model_version != "1"
        )

        def first_new() -> float | None:
            with loop.store.engine.connect() as conn:
                return conn.execute(query).scalar_one()

        if loop.champion() != "1":
            # An answer can be given before its batch is in the table: a writer that finds the
            # database busy (a training reading it, on a loaded machine) spools it for later.
            loop.wait(lambda: first_new() is not None, "the new version's answers are not logged")
        new_at = first_new()
        course = pd.DataFrame(
            {
                "month": [str(m["date"].iloc[0])[:7] for m in months],
                "served": [
                    rmse([a["prediction"] for a in got], m[TARGET])
                    for got, m in zip(fed.answers, months, strict=True)
                ],
                "first_model": first_by_month,
                "versions": [
                    "+".join(sorted({a["model_version"] for a in got}, key=int))
                    for got in fed.answers
                ],
            }
        )
        return Seasons(
            first=first_error,
            served=served,
            all_history=all_history_rmse(rows[dates < TRAFFIC_UNTIL], after),
            split_by=(model.get("split") or {}).get("by"),
            features=loop.features,
            champion=loop.champion(),
            seconds_to_new_answer=None if new_at is None else round(new_at - crossed_at, 1),
            versions=loop.summary(),
            decisions=[
                f"v{v.version} {v.tags.get(Tag.CANDIDATE)}/{v.tags.get(Tag.MIX)}: "
                f"{v.tags.get(Tag.GATE_REASON)}"
                for v in loop.versions()
            ],
            months=course,
        )


def plot(seasons: Seasons, path: Path) -> None:
    """Each month's error as served and as the first model would have answered, and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    course = seasons.months
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(course))
    ax.plot(x, course["first_model"], "o--", color="grey", label="the first model (winter only)")
    ax.plot(x, course["served"], "o-", color="tab:blue", label="served by the loop")
    for i, versions in enumerate(course["versions"]):
        if i == 0 or versions != course["versions"][i - 1]:
            ax.annotate(
                f"v{versions}",
                (x[i], course["served"][i]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
    ax.set_xticks(x[::3], course["month"][::3])
    ax.set_ylabel("RMSE of the day's highest temperature (°C)")
    ax.set_title(
        f"2014-2015, after the traffic: first model {seasons.first:.2f}, served "
        f"{seasons.served:.2f}, all history {seasons.all_history:.2f} °C",
        fontsize=10,
    )
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """Run the seasons once and plot them (the README's figure)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("png", type=Path)
    parser.add_argument("--pause", type=float, default=8.0, help="seconds between months")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlserve-seasons-") as folder:
        seasons = run(Path(folder), args.pause)
    plot(seasons, args.png)
    sys.stdout.write(f"{seasons.months.to_string(index=False)}\n")
    sys.stdout.write(
        f"after the traffic: first {seasons.first:.3f}, served {seasons.served:.3f}, "
        f"all history {seasons.all_history:.3f}; threshold -> new answer "
        f"{seasons.seconds_to_new_answer} s; {seasons.versions}\n"
    )
    sys.stdout.write("\n".join(seasons.decisions) + "\n")


if __name__ == "__main__":
    main()
