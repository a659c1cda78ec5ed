"""The loop bench's tables stay declarable: the suite runs no loop of the bench (minutes each)."""

from __future__ import annotations

import pandas as pd

from bench.loop import tables
from mlserve_assets.cli.simulation import FEATURES
from mlserve_assets.spec.models import ModelSpec


def test_the_large_table_is_a_model_a_spec_accepts_with_boosting_and_its_generated_rows(tmp_path):
    declared = tables(tmp_path, 300)
    assert declared.pop("drift example") is None  # the drift model as the loop tests declare it
    [model] = declared.values()
    spec = ModelSpec.model_validate(model)
    rows = pd.read_csv(spec.source.path)
    assert len(rows) == 300
    assert list(rows.columns) == [*FEATURES, spec.target]
    estimators = {c.build().__class__.__name__ for c in spec.candidates}
    assert "HistGradientBoostingClassifier" in estimators, estimators
