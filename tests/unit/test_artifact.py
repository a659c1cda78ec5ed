"""mlserve's trusted types cover what its preparation and the scikit-learn families need, and
nothing a version's own files say widens them."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from mlserve_assets.ml.prepare import preparation
from serving.model.artifact import TRUSTED_TYPES, needed_types, trusted_types, untrusted

FAMILIES = [
    "linear_model.LogisticRegression",
    "linear_model.Ridge",
    "linear_model.SGDClassifier",
    "ensemble.RandomForestClassifier",
    "ensemble.ExtraTreesRegressor",
    "ensemble.GradientBoostingClassifier",
    "ensemble.HistGradientBoostingClassifier",
    "ensemble.HistGradientBoostingRegressor",
    "ensemble.AdaBoostClassifier",
    "tree.DecisionTreeRegressor",
    "svm.SVC",
    "neighbors.KNeighborsClassifier",
    "naive_bayes.GaussianNB",
    "neural_network.MLPClassifier",
]


def _rows() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = make_classification(80, 4, random_state=0)
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["kind"] = np.where(x[:, 0] > 0, "high", "low")
    return frame, y


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_behind_the_preparation_needs_only_trusted_types(family):
    module, name = family.rsplit(".", 1)
    estimator = getattr(importlib.import_module(f"sklearn.{module}"), name)()
    kinds = {"a": "numeric", "b": "numeric", "c": "numeric", "d": "numeric", "kind": "categorical"}
    frame, y = _rows()
    fitted = Pipeline([("prepare", preparation(kinds)), ("model", estimator)]).fit(frame, y)
    needed = skops.io.get_untrusted_types(data=skops.io.dumps(fitted))
    assert untrusted(needed, TRUSTED_TYPES) == []


def test_training_refuses_a_model_needing_a_type_off_the_list_unless_the_spec_lists_it():
    frame, y = _rows()
    fitted = KNeighborsClassifier(metric="chebyshev").fit(frame[list("abcd")], y)
    extra = "sklearn.metrics._dist_metrics.ChebyshevDistance64"
    with pytest.raises(ValueError, match=f"{extra}; list them in the spec's trusted_types"):
        needed_types(fitted, trusted_types())
    assert extra in needed_types(fitted, trusted_types([extra]))
