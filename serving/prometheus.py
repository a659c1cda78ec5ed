"""Prometheus metrics the service adds to BentoML's ``/metrics``.

Created in the service's ``__init__``, not at import: BentoML sets prometheus_client's multiprocess
directory after importing the service module, and metrics made earlier would never be exported.
Error answers are counted at the edge of the app (``serving.http.rejections``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.model.served import ServedModel
    from serving.registry import DriftReport, GateSummary
    from serving.store.tables import Labelled


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
            "mlserve_rejected_requests",
            "Requests answered with an error (4xx or 5xx), by endpoint (unknown paths as 'other').",
            ["endpoint", "status"],
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
        self._runtime = prom.Gauge(
            "mlserve_served_runtime",
            "1 for what answers the served version: onnx (its verified twin) or scikit-learn.",
            ["model", "runtime"],
            multiprocess_mode="mostrecent",
        )
        self._spooled = prom.Gauge(
            "mlserve_prediction_log_spooled",
            "Answered predictions waiting in the local spool for the database to return.",
            multiprocess_mode="mostrecent",
        )
        self._quarantined = prom.Gauge(
            "mlserve_prediction_log_quarantined",
            "Spooled predictions the database refused on replay, set aside in the spool.",
            multiprocess_mode="mostrecent",
        )
        self.log_backlog(0, 0)  # exported from the start, for the alerts to read
        self._refused = prom.Counter(
            "mlserve_champion_refused",
            "Versions the champion alias named that the service refused to serve, by why: "
            "'unrecorded' (moved around mlserve) or 'unsafe' (mlserve will not load it).",
            ["model", "reason"],
        )
        self._rollbacks = prom.Counter(
            "mlserve_champion_rollbacks",
            "Moves back to an earlier champion the service followed (baking's automatic "
            "rollbacks and mlserve rollback): each one is a promotion that went wrong.",
            ["model"],
        )
        self._shadowed = prom.Counter(
            "mlserve_shadow_predictions",
            "Requests the challenger answered in shadow (never sent), by its version.",
            ["model", "version"],
        )
        self._agreed = prom.Counter(
            "mlserve_shadow_agreed",
            "Shadow answers equal to the champion's: over mlserve_shadow_predictions, how often "
            "promoting the challenger would change nothing.",
            ["model", "version"],
        )
        self._shadow_skipped = prom.Counter(
            "mlserve_shadow_skipped",
            "Requests the challenger did not answer in shadow, by why: 'behind' (its queue "
            "was full), 'failed' (it raised or could not take them), 'unlogged' (the database "
            "refused them).",
            ["model", "reason"],
        )
        self._shadow_labelled = prom.Counter(
            "mlserve_shadow_labelled",
            "Labelled requests the challenger also answered in shadow, by its version: the "
            "denominator of the champion-against-challenger comparison on the same requests.",
            ["model", "version"],
        )
        self._shadow_correct = prom.Counter(
            "mlserve_shadow_labelled_correct",
            "Of mlserve_shadow_labelled, the answers that were right (classifiers), by role: "
            "'served' (what answered) or 'challenger' (its shadow answer).",
            ["model", "version", "role"],
        )
        self._shadow_squared_error = prom.Counter(
            "mlserve_shadow_labelled_squared_error",
            "Of mlserve_shadow_labelled, the sum of squared errors (regressors), by role.",
            ["model", "version", "role"],
        )
        self._held_streak = prom.Gauge(
            "mlserve_gate_held_streak",
            "How many of the newest registered versions in a row the gate held: retraining "
            "keeps running and nothing it makes is good enough.",
            ["model"],
            multiprocess_mode="mostrecent",
        )
        self._drifted = prom.Gauge(
            "mlserve_drifted_features",
            "Features the latest drift check on served traffic found moved from the training "
            "data (the no_feature_drift check, read from the registry).",
            ["model"],
            multiprocess_mode="mostrecent",
        )
        self._estimate = prom.Gauge(
            "mlserve_estimated_score",
            "The label-free estimate of the metric on the latest served traffic (classifiers), "
            "from the same check: what the live metric will likely say once labels arrive.",
            ["model", "metric"],
            multiprocess_mode="mostrecent",
        )
        self._refusing = prom.Gauge(
            "mlserve_champion_alias_refused",
            "1 while the champion alias names a version the service refuses (the previous one "
            "keeps serving), else 0.",
            ["model"],
            multiprocess_mode="mostrecent",
        )

    def predicted(self, model: ServedModel, records: int, seconds: float) -> None:
        """Count one answered /predict request."""
        self._predictions.labels(model.name, model.version).inc(records)
        self._latency.labels(model.name, model.version).observe(seconds)

    def rejected(self, endpoint: str, status: int) -> None:
        """Count one error answer (through ``CountRejections``)."""
        self._rejected.labels(endpoint, str(status)).inc()

    def feedback(self, model: str, status: int) -> None:
        """Count one feedback item."""
        self._feedback.labels(model, str(status)).inc()

    def labelled(self, model: str, label: Labelled, truth: Any, *, regression: bool) -> None:
        """Count one new label against the version that made the prediction.

        And, when the challenger answered the same request in shadow, against both of them, so
        the dashboard compares the two on the same labelled requests.
        """
        self._labelled.labels(model, label.model_version).inc()
        self._judge(
            self._correct,
            self._squared_error,
            (model, label.model_version),
            label.prediction,
            truth,
            regression,
        )
        if label.shadow is None:
            return
        version, answer = label.shadow
        self._shadow_labelled.labels(model, version).inc()
        for role, said in (("served", label.prediction), ("challenger", answer)):
            labels = (model, version, role)
            self._judge(
                self._shadow_correct, self._shadow_squared_error, labels, said, truth, regression
            )

    @staticmethod
    def _judge(
        correct: Any,
        squared_error: Any,
        labels: tuple[str, ...],
        said: Any,
        truth: Any,
        regression: bool,
    ) -> None:
        """Add one answer's error (regression) or rightness (classification) to its counter."""
        if regression:
            # A multiplication overflows to infinity instead of raising; a label is checked to
            # square finitely, so only an absurd prediction could, and it is left out.
            error = float(said) - float(truth)
            if math.isfinite(error * error):
                squared_error.labels(*labels).inc(error * error)
            else:
                squared_error.labels(*labels).inc(0)
        else:
            correct.labels(*labels).inc(1 if said == truth else 0)

    def registered(self, model: str, gates: GateSummary) -> None:
        """Record how many versions the registry holds per gate outcome, and the held streak."""
        for gate, count in gates.counts.items():
            self._versions.labels(model, gate).set(count)
        self._held_streak.labels(model).set(gates.held_streak)

    def drift(self, model: str, report: DriftReport | None) -> None:
        """Record the latest drift check's verdict (none yet: no feature known to drift)."""
        self._drifted.labels(model).set(0 if report is None else len(report.drifted))
        if report is not None and report.estimate is not None:
            self._estimate.labels(model, report.metric).set(report.estimate)

    def served(self, model: ServedModel) -> None:
        """Record the version now served."""
        self._served.labels(model.name).set(float(model.version))
        for runtime in ("onnx", "scikit-learn"):
            self._runtime.labels(model.name, runtime).set(float(runtime == model.runtime))

    def log_backlog(self, spooled: int, quarantined: int) -> None:
        """Record what the spool holds: rows waiting for the database, rows it refused."""
        self._spooled.set(spooled)
        self._quarantined.set(quarantined)

    def shadowed(self, model: str, version: str, answered: int, agreed: int) -> None:
        """Count shadow answers, and those equal to the champion's."""
        self._shadowed.labels(model, version).inc(answered)
        self._agreed.labels(model, version).inc(agreed)

    def shadow_skipped(self, model: str, requests: int, reason: str) -> None:
        """Count requests the challenger did not answer in shadow, and why."""
        self._shadow_skipped.labels(model, reason).inc(requests)

    def rolled_back(self, model: str, count: int = 1) -> None:
        """Count ``count`` rollbacks followed (0 exports the counter from the start)."""
        self._rollbacks.labels(model).inc(count)

    def refused(self, model: str, reason: str | None) -> None:
        """Count a newly refused alias move (``reason``), or record that none is refused now."""
        if reason is not None:
            self._refused.labels(model, reason).inc()
        self._refusing.labels(model).set(0 if reason is None else 1)
