"""Drift: which features of the served traffic moved away from the data the model was trained on.

Each feature gets a test and an effect size. Numbers: the two-sample Kolmogorov-Smirnov test (and
a chi-square on how often they are missing);
text, booleans and categories: a chi-square test of the two samples' counts. Both: the
population stability index over the training data's deciles (or categories; an unseen value and a
gap are bins of their own). A feature drifted only when both agree: the test's p-value below
``alpha`` shared among the features (Bonferroni, so traffic from the training distribution raises
a false alarm on any feature in at most ``alpha`` of checks), and the PSI at least ``min_psi``
(0.2 is the usual "major shift"), so a shift too small to matter is not called one merely because
a large window makes it significant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mlserve_assets.spec.watching import Drift

BINS = 10
FLOOR = 1e-4
"""A bin's smallest share in the PSI: an empty bin would make it infinite."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature: its test, the test's p-value, the PSI, and whether it drifted."""

    feature: str
    test: str
    p_value: float
    psi: float
    drifted: bool


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(expected / expected.sum(), FLOOR, None)
    a = np.clip(actual / max(actual.sum(), 1), FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric(reference: pd.Series, served: pd.Series) -> tuple[str, float, np.ndarray, np.ndarray]:
    ref, now = reference.astype(float), pd.to_numeric(served, errors="coerce")
    edges = np.unique(np.quantile(ref.dropna(), np.linspace(0, 1, BINS + 1))[1:-1])

    def counts(values: pd.Series) -> np.ndarray:
        present = values.dropna().to_numpy()
        binned = np.bincount(
            np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1
        )
        return np.append(binned, values.isna().sum())

    # Where the values lie (KS, on the values present) and how often they are missing (a
    # chi-square on present/missing counts): the smaller p-value, doubled for the two tests.
    both = ref.dropna(), now.dropna()
    p = float(stats.ks_2samp(*both).pvalue) if all(len(s) for s in both) else 1.0
    gaps = np.array([[len(both[0]), ref.isna().sum()], [len(both[1]), now.isna().sum()]])
    if gaps[:, 1].any() and gaps[:, 0].all():
        p = min(p, float(stats.chi2_contingency(gaps).pvalue))
        p = min(1.0, 2 * p)
    return "ks", p, counts(ref), counts(now)


def _categorical(
    reference: pd.Series, served: pd.Series
) -> tuple[str, float, np.ndarray, np.ndarray]:
    known = sorted(reference.dropna().astype(str).unique())

    def counts(values: pd.Series) -> np.ndarray:
        text = values.dropna().astype(str)
        seen = text.value_counts()
        return np.array(
            [seen.get(k, 0) for k in known] + [(~text.isin(known)).sum(), values.isna().sum()]
        )

    expected, actual = counts(reference), counts(served)
    table = np.array([expected, actual])
    table = table[:, table.sum(axis=0) > 0]
    p = float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
    return "chi2", p, expected, actual


def feature_drift(
    reference: pd.DataFrame, served: pd.DataFrame, rules: Drift
) -> list[FeatureDrift]:
    """Each of ``reference``'s columns compared with the same column of ``served``.

    A column the served records lack counts as all gaps (the service fills optional inputs so).
    """
    found = []
    share = rules.alpha / max(len(reference.columns), 1)
    for column in reference.columns:
        ref = reference[column]
        now = served[column] if column in served else pd.Series([None] * len(served))
        numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
        test, p, expected, actual = (_numeric if numeric else _categorical)(ref, now)
        psi = _psi(expected.astype(float), actual.astype(float))
        found.append(FeatureDrift(column, test, p, psi, p < share and psi >= rules.min_psi))
    return found
