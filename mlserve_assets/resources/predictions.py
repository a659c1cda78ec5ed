"""The prediction log as a Dagster resource: what the feedback assets and the sensor read."""

import dagster as dg
from pydantic import PrivateAttr

from mlserve_assets.ml.feedback import outcome_metric
from mlserve_assets.ml.metrics import Metric
from serving.store.predictions import PredictionStore


class PredictionLogResource(dg.ConfigurableResource):
    """The same database the service logs to (SQLite or PostgreSQL, by URL)."""

    url: str

    _store: PredictionStore | None = PrivateAttr(default=None)

    @property
    def store(self) -> PredictionStore:
        """The store, created on first use and kept for this resource's lifetime."""
        if self._store is None:
            self._store = PredictionStore(self.url)
            self._store.create_schema()
        return self._store

    def live_metric(
        self, model_name: str, version: str, metric: Metric, window: int, min_labelled: int = 1
    ) -> float | None:
        """One served version's metric on its latest ``window`` labels, if ``min_labelled``.

        Only the window is read: the cost stays flat however many labels the log holds.
        """
        outcomes = self.store.outcomes(model_name, version, latest=window)
        return outcome_metric(outcomes, metric, min_labelled)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections."""
        if self._store is not None:
            self._store.dispose()
