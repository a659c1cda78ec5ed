"""The prediction log as a Dagster resource: what the feedback assets and the sensor read."""

import dagster as dg
from pydantic import PrivateAttr

from mlserve_assets.ml.feedback import live_metrics, version_live_metric
from mlserve_assets.ml.metrics import Metric
from serving.prediction_store import PredictionStore


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
        self, model_name: str, version: str, metric: Metric, min_labelled: int = 1
    ) -> float | None:
        """One served version's metric on its own labels; None below ``min_labelled`` of them."""
        outcomes = self.store.outcomes(model_name, version)
        return version_live_metric(live_metrics(outcomes, metric), version, metric, min_labelled)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections."""
        if self._store is not None:
            self._store.dispose()
