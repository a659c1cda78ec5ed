"""Fitting and scoring: candidates on data mixes, scored on the selection rows and folds.

Plain functions of data and spec, with no tracking or Dagster, so the leaderboard's figures and
the gate's inputs are testable without an MLflow store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline

from mlserve_assets.ml.metrics import Metric
from mlserve_assets.ml.mixes import Mix, TrainingSet, final_training_set, mixes_for
from mlserve_assets.ml.split import DatasetSplit, Rows, weighted_holdouts
from mlserve_assets.spec.candidates import Candidate, final_step
from mlserve_assets.spec.models import RetrainData

# Below this many rows a feedback-only mix is not tried: a model fitted on a handful of labels
# says more about the handful than about the traffic.
MIN_MIX_ROWS = 20
# Successive halving keeps at least this many candidate x mix arms after the first round.
KEEP_AT_LEAST = 2
SPREAD_FROM_ROWS = 1000  # a forest's fit on threads: see _on_every_core
FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate fitted on one mix, with its selection score (the mean over the folds)."""

    name: str
    mix: str
    estimator: BaseEstimator
    """One fold's fit: its parameters and type are what the trial logs."""
    score: float
    fit_seconds: float
    rows: int
    """Training rows of a fold, on average."""


@dataclass(frozen=True)
class Skipped:
    """A candidate x mix that was not fitted, and why."""

    name: str
    mix: str
    reason: str


@dataclass
class Selection:
    """Every candidate x mix tried: fitted ones best first, skipped ones with their reason."""

    fitted: list[FittedCandidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    fits: int = 0
    """Estimators fitted to choose, those of arms that did not go on included."""

    def best(self, metric: Metric) -> FittedCandidate:
        """The trial the leaderboard ranks first (``Metric.rank``: ties to the earlier trial)."""
        return min(self.fitted, key=lambda t: metric.rank(t.score))


def selection_score(
    estimator: BaseEstimator, held: Rows, data: DatasetSplit, metric: Metric, base_weight: float
) -> float:
    """Score on one round's choosing labels, with the base selection rows at ``base_weight``."""
    parts = weighted_holdouts(held, data.base_select, base_weight)
    return sum(h.weight * score(estimator, h.rows, metric) for h in parts)


def _unusable(candidate: Candidate, mix: Mix, train: TrainingSet, classification: bool) -> str:
    if mix.needs_weights and not candidate.accepts_sample_weight():
        return "the estimator takes no sample weights"
    if mix.name != "base" and len(train.rows) < MIN_MIX_ROWS:
        return f"{len(train.rows)} rows, fewer than {MIN_MIX_ROWS}"
    if classification and train.rows.y.nunique() < 2:
        return "one class only"
    return ""


def select_candidates(
    candidates: list[Candidate],
    data: DatasetSplit,
    metric: Metric,
    policy: RetrainData,
    base_weight: float,
) -> Selection:
    """Every candidate on every mix, in successive halving over the selection rounds.

    Each candidate x mix fits and scores on the first round; only the best third of them (at
    least ``KEEP_AT_LEAST``) fit on the other rounds, ranked by the rounds' mean; the rest are
    skipped saying how far behind they were. With three folds that is 20 fits of 36 for three
    candidates on four mixes (14 of 24 for two), and over 100 draws of ids the choices fell short
    as often as with every arm on every fold (``python -m bench --only selection``).
    """
    selection = Selection()
    classification = metric.task == "classification"
    rounds = list(data.selection_rounds())
    tried: list[tuple[Candidate, Mix, list[tuple[TrainingSet, Rows]]]] = []
    for mix in mixes_for(policy, data):
        sets = [(mix.build(data.base_train, fit_on, policy), held) for fit_on, held in rounds]
        for candidate in candidates:
            reason = next(
                filter(None, (_unusable(candidate, mix, t, classification) for t, _ in sets)), ""
            )
            if reason:
                selection.skipped.append(Skipped(candidate.name, mix.name, reason))
            else:
                tried.append((candidate, mix, sets))

    def fit_and_score(
        candidate: Candidate, train: TrainingSet, held: Rows
    ) -> tuple[BaseEstimator, float, float]:
        estimator, took = fit(candidate, train, data.preparation())
        return estimator, selection_score(estimator, held, data, metric, base_weight), took

    first = [fit_and_score(candidate, *sets[0]) for candidate, _, sets in tried]
    selection.fits = len(first)
    keep = max(KEEP_AT_LEAST, math.ceil(len(tried) / 3)) if len(rounds) > 1 else len(tried)
    ranked = sorted(range(len(tried)), key=lambda i: metric.rank(first[i][1]))
    going_on = set(ranked[:keep])
    for i, (candidate, mix, sets) in enumerate(tried):
        if i not in going_on:
            behind = f"{metric.name} {first[i][1]:.4f} on the first round"
            reason = f"{behind}: not among the best {keep} of {len(tried)}, which went on"
            selection.skipped.append(Skipped(candidate.name, mix.name, reason))
            continue
        fits = [first[i], *(fit_and_score(candidate, *held) for held in sets[1:])]
        selection.fits += len(fits) - 1
        rows = round(sum(len(t.rows) for t, _ in sets) / len(sets))
        selection.fitted.append(
            FittedCandidate(
                candidate.name,
                mix.name,
                fits[-1][0],
                float(np.mean([s for _, s, _ in fits])),
                sum(took for *_, took in fits),
                rows,
            )
        )
    return selection


def refit(
    candidates: list[Candidate], name: str, mix: str, data: DatasetSplit, policy: RetrainData
) -> tuple[BaseEstimator, float, int]:
    """The final model: the chosen candidate on its mix over every train and selection row.

    Returns it with its fit's seconds and rows.
    """
    candidate = next(c for c in candidates if c.name == name)
    train = final_training_set(mix, data, policy)
    estimator, seconds = fit(candidate, train, data.preparation())
    return estimator, seconds, len(train.rows)


def fit(
    candidate: Candidate, train: TrainingSet, prepare: ColumnTransformer | None = None
) -> tuple[BaseEstimator, float]:
    """A fresh estimator, behind ``prepare`` when given, fitted on the set.

    Sample weights go to the final estimator, however deep the Pipelines nest.
    """
    estimator = candidate.build()
    if prepare is not None:
        estimator = Pipeline([("prepare", prepare), ("model", estimator)])
    prefix, model = final_step(estimator)
    weighted = "__".join(filter(None, [prefix, "sample_weight"]))
    fit_params = {} if train.weight is None else {weighted: train.weight}
    started = time.perf_counter()
    with _on_every_core(model, len(train.rows)):
        estimator.fit(train.rows.x, train.rows.y, **fit_params)
    return estimator, time.perf_counter() - started


@contextmanager
def _on_every_core(model: BaseEstimator, rows: int) -> Iterator[None]:
    """Grow a forest on every core the process may use when the spec left ``n_jobs`` unset.

    Its trees then grow on threads of scikit-learn's own (the GIL released); the fitted model is
    the same, since scikit-learn draws each tree's seed before dispatching. Measured on two cores,
    200 trees: 2.3 -> 1.45 s at 6,000 rows, 1.20 -> 0.88 s at 3,000, even at 1,000, and 10%
    slower at 100-300 rows, where each tree's fixed cost (the GIL held) is most of it: hence
    ``SPREAD_FROM_ROWS``. Forests only: elsewhere ``n_jobs`` starts process pools
    (stacking, voting: seconds of start per fit) or does nothing and warns (logistic
    regression); boosting already spreads over the cores (OpenMP). ``n_jobs`` is unset again
    afterwards: the version logs the spec's parameters, and one request's rows are not worth a
    pool of threads.
    """
    spread = isinstance(model, FORESTS) and model.n_jobs is None and rows >= SPREAD_FROM_ROWS
    if spread:
        model.set_params(n_jobs=-1)
    try:
        yield
    finally:
        if spread:
            model.set_params(n_jobs=None)


def score(estimator: BaseEstimator, rows: Rows, metric: Metric) -> float:
    """The metric on some rows."""
    return float(metric.score(rows.y.to_numpy(), estimator.predict(rows.x)))
