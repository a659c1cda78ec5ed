"""Choosing a candidate (successive halving over candidate x mix) and fitting each arm."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from harness.loop import drift_model
from harness.retraining import as_labels
from mlserve_assets.ml.mixes import TrainingSet, mixes_for
from mlserve_assets.ml.split import Rows, split_dataset
from mlserve_assets.ml.train import SPREAD_FROM_ROWS, fit, select_candidates, selection_score
from mlserve_assets.spec.candidates import Candidate
from mlserve_assets.spec.models import ModelSpec

BOOSTING = {
    "name": "boosting",
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    # 32 bins, not 255: scikit-learn 1.9 bins weighted rows one threshold at a time, and the
    # weighted mix made this the unit tier's slowest test (12 s on a slow machine).
    "params": {"max_iter": 20, "max_bins": 32, "random_state": 0},
}


def _spec_and_split():
    x, y = make_classification(600, 6, n_informative=4, random_state=0)
    columns = [f"x{i}" for i in range(6)]
    frame = pd.DataFrame(x, columns=columns).assign(label=y)
    base, labelled = frame[:400], as_labels(frame[400:], seed=0)
    # The drift model's candidates and histogram boosting: three, on four mixes.
    model = drift_model()
    # Ten trees, not the drift model's fifty: halving is about which arms go on, not their fit
    # (the unit tier's slowest test, 9.4 -> 6.8 s on a half-speed machine).
    candidates = [
        c | {"params": c["params"] | {"n_estimators": 10}}
        if "n_estimators" in c.get("params", {})
        else c
        for c in model["candidates"]
    ]
    spec = ModelSpec.model_validate(model | {"candidates": [*candidates, BOOSTING]})
    data = split_dataset(
        base, columns, "label", spec.split, labelled, spec.retrain.data, role_secret=b"k"
    )
    return spec, data


def test_the_best_third_on_the_first_round_go_on_and_the_rest_are_skipped_saying_why():
    spec, data = _spec_and_split()
    policy = spec.retrain.data
    # Independently: every candidate x mix fitted and scored on the first round alone.
    fit_on, held = next(data.selection_rounds())
    first = {}
    for mix in mixes_for(policy, data):
        train = mix.build(data.base_train, fit_on, policy)
        for candidate in spec.candidates:
            model, _ = fit(candidate, train, data.preparation())
            first[candidate.name, mix.name] = selection_score(model, held, data, spec.scorer, 0.1)
    assert len(first) == 12  # three candidates on four mixes
    best = sorted(first, key=lambda arm: spec.scorer.rank(first[arm]))[:4]

    selection = select_candidates(spec.candidates, data, spec.scorer, policy, 0.1)
    assert [(t.name, t.mix) for t in selection.fitted] == [a for a in first if a in best]
    assert {(s.name, s.mix) for s in selection.skipped} == set(first) - set(best)
    assert selection.fits == 12 + 4 * 2  # every arm once, the best four on two more folds
    for skipped in selection.skipped:
        score = first[skipped.name, skipped.mix]
        assert f"accuracy {score:.4f} on the first round" in skipped.reason
        assert "not among the best 4 of 12" in skipped.reason


class RecordingForest(RandomForestClassifier):
    """A forest that remembers the ``n_jobs`` it was fitted with."""

    def fit(self, X, y, sample_weight=None):
        self.fitted_with_jobs_ = self.n_jobs
        return super().fit(X, y, sample_weight=sample_weight)


def _forest(path: str, **params) -> Candidate:
    return Candidate(
        name="forest", estimator=path, params={"n_estimators": 8, "random_state": 0, **params}
    )


def test_a_forest_grows_on_every_core_and_logs_the_spec_parameters():
    x, y = make_classification(SPREAD_FROM_ROWS, 5, random_state=0)
    rows = Rows(pd.DataFrame(x), pd.Series(y))
    recording = f"{__name__}.RecordingForest"
    model, _ = fit(_forest(recording), TrainingSet(rows))
    assert model.fitted_with_jobs_ == -1
    assert model.n_jobs is None  # what the version logs and serves with
    # The same forest as one fitted on one core, independently.
    alone = RandomForestClassifier(8, random_state=0).fit(x, y)
    assert (model.predict_proba(x) == alone.predict_proba(x)).all()
    # A spec's own n_jobs is kept, and a handful of rows is not worth the threads.
    assert fit(_forest(recording, n_jobs=1), TrainingSet(rows))[0].fitted_with_jobs_ == 1
    few = Rows(rows.x[:100], rows.y[:100])
    assert fit(_forest(recording), TrainingSet(few))[0].fitted_with_jobs_ is None
