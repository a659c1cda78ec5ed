"""The prediction log as a Dagster resource: what the feedback assets, the gate and the sensor read.

Assets and sensors ask it questions; none reaches the store below it. The live metric is computed
here only, over the same window for the sensor, the gate, the feedback asset and ``mlserve status``.
"""

from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from mlserve_assets.ml.labels import outcome_metric
from mlserve_assets.ml.metrics import Metric
from serving.http.auth import local_key_id
from serving.store.predictions import PredictionStore
from serving.store.tables import LabelsSince


class Live(NamedTuple):
    """A served version's live metric (None below the minimum of labels) and its labels."""

    value: float | None
    labels: int


class PredictionLogResource(dg.ConfigurableResource):
    """The same database the service logs to (SQLite or PostgreSQL, by URL)."""

    url: str
    home: str | None = None
    """The project's home: labels sent with the local key `mlserve serve` made there are the
    owner's, a trusted source for the gate."""
    trusted_sources: list[str] = []
    """Key ids the deployment trusts as label sources (``MLSERVE_TRUSTED_SOURCES``), beside the
    ones each spec's gate lists: which keys label is the deployment's business, like its keys."""

    _store: PredictionStore | None = PrivateAttr(default=None)

    @property
    def store(self) -> PredictionStore:
        """The store, created on first use and kept for this resource's lifetime.

        For the registry resource, which records each move of the champion in this database in
        the same transaction as the move.
        """
        if self._store is None:
            self._store = PredictionStore(self.url)
            self._store.create_schema()
        return self._store

    def versions_served(self, model_name: str, since: float = 0.0) -> dict[str, int]:
        """Predictions logged per version of the model (after ``since``, a time)."""
        return self.store.versions_served(model_name, since)

    def labelled(self, model_name: str) -> pd.DataFrame:
        """Every labelled prediction of the model, oldest label first."""
        return self.store.labelled(model_name)

    def labelled_since(self, model_name: str, after: float) -> LabelsSince:
        """The labels that arrived after ``after`` (a time): their count, first and latest."""
        return self.store.labelled_since(model_name, after)

    def trusted_senders(self, declared: Collection[str]) -> frozenset[str]:
        """The label senders the gate lets carry its evidence.

        The spec's (``declared``), the deployment's, and the local key.
        """
        local = None if self.home is None else local_key_id(Path(self.home))
        return frozenset(declared) | set(self.trusted_sources) | ({local} if local else set())

    def role_secret(self) -> bytes:
        """The secret each label's role is keyed by, kept in this database (made on first use)."""
        return self.store.role_secret()

    def live(
        self, model_name: str, version: str, metric: Metric, window: int, min_labelled: int = 1
    ) -> Live:
        """One served version's metric on its latest ``window`` labels, if ``min_labelled``.

        Only the window is read: the cost stays flat however many labels the log holds.
        """
        outcomes = self.store.outcomes(model_name, version, latest=window)
        return Live(outcome_metric(outcomes, metric, min_labelled), len(outcomes))

    def live_metric(
        self, model_name: str, version: str, metric: Metric, window: int, min_labelled: int = 1
    ) -> float | None:
        """Only the value of :meth:`live`."""
        return self.live(model_name, version, metric, window, min_labelled).value

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections."""
        if self._store is not None:
            self._store.dispose()
