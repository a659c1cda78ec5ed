"""Prometheus metrics the service adds to BentoML's ``/metrics``.

Created in the service's ``__init__``, not at import: BentoML sets prometheus_client's multiprocess
directory after importing the service module, and metrics made earlier would never be exported.
"""

from __future__ import annotations

from typing import Any

from serving.model import ServedModel


class ServiceMetrics:
    """Counters and histograms labelled by model and version."""

    def __init__(self) -> None:
        import prometheus_client as prom

        self._predictions = prom.Counter(
            "mlserve_predictions", "Records predicted.", ["model", "version"]
        )
        self._latency = prom.Histogram(
            "mlserve_prediction_latency_seconds",
            "Time to validate, predict and durably log one /predict request.",
            ["model", "version"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self._rejected = prom.Counter(
            "mlserve_rejected_requests", "Requests answered with an error.", ["endpoint", "status"]
        )
        self._feedback = prom.Counter(
            "mlserve_feedback", "Feedback items by outcome (HTTP status).", ["model", "status"]
        )
        self._labelled = prom.Counter(
            "mlserve_labelled_predictions",
            "Predictions that received ground truth, by the version that made them.",
            ["model", "version"],
        )
        self._correct = prom.Counter(
            "mlserve_labelled_correct",
            "Labelled predictions that were right (classifiers): live accuracy is this over "
            "mlserve_labelled_predictions.",
            ["model", "version"],
        )
        self._squared_error = prom.Counter(
            "mlserve_labelled_squared_error",
            "Sum of squared errors of labelled predictions (regressors): live RMSE is the root "
            "of this over mlserve_labelled_predictions.",
            ["model", "version"],
        )
        self._versions = prom.Gauge(
            "mlserve_registered_versions",
            "Registered versions of the served model by gate outcome: each retraining run "
            "registers one, so this counts trainings and how many the gate let through.",
            ["model", "gate"],
            multiprocess_mode="mostrecent",
        )
        self._served = prom.Gauge(
            "mlserve_served_model_version",
            "Registered version currently served.",
            ["model"],
            multiprocess_mode="mostrecent",
        )

    def predicted(self, model: ServedModel, records: int, seconds: float) -> None:
        """Count one answered /predict request."""
        self._predictions.labels(model.name, model.version).inc(records)
        self._latency.labels(model.name, model.version).observe(seconds)

    def rejected(self, endpoint: str, status: int) -> None:
        """Count one error answer."""
        self._rejected.labels(endpoint, str(status)).inc()

    def feedback(self, model: str, status: int) -> None:
        """Count one feedback item."""
        self._feedback.labels(model, str(status)).inc()

    def labelled(
        self, model: str, version: str, prediction: Any, truth: Any, *, regression: bool
    ) -> None:
        """Count one label against the version that made the prediction."""
        self._labelled.labels(model, version).inc()
        if regression:
            self._squared_error.labels(model, version).inc((float(prediction) - float(truth)) ** 2)
        elif prediction == truth:
            self._correct.labels(model, version).inc()

    def registered(self, model: str, by_gate: dict[str, int]) -> None:
        """Record how many versions the registry holds per gate outcome."""
        for gate, count in by_gate.items():
            self._versions.labels(model, gate).set(count)

    def served(self, model: ServedModel) -> None:
        """Record the version now served."""
        self._served.labels(model.name).set(float(model.version))
