"""The unit tier's one in-process service, shared by the route and trust tests (see
``harness.inprocess`` for why there is one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.inprocess import Served, in_process_service

DATA = load_breast_cancer(as_frame=True)
ROWS = DATA.data.iloc[:, :5]  # five features keep the document small


def fitted(c: float) -> object:
    """A scaled logistic regression on ``ROWS``."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(ROWS, DATA.target)


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Iterator[Served]:
    with in_process_service(tmp_path_factory.mktemp("service"), fitted(1.0), ROWS) as service:
        yield service
