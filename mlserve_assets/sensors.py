"""Feedback-driven retraining: one sensor per model that closes the loop without a person.

The cursor holds the latest feedback time already claimed by a requested run, and run keys are
derived from it, so the same labels never trigger two runs, across ticks and daemon restarts.
A run whose challenger fails the gate leaves the champion as it was; its labels stay claimed, so
the next run waits for ``min_feedback_rows`` new ones instead of retrying on the same data.
"""

import time

import dagster as dg

from mlserve_assets.ml.feedback import live_metrics, version_live_metric
from mlserve_assets.resources.mlflow_registry import MlflowRegistry
from mlserve_assets.resources.prediction_log import PredictionLogResource
from mlserve_assets.spec import ModelSpec
from serving.contract import feedback_watermark

MIN_ROWS_FOR_LIVE_METRIC = 30


def build_retrain_sensor(model: ModelSpec, job_name: str) -> dg.SensorDefinition:
    """The sensor that requests ``job_name`` when the spec's retraining rules say so."""
    name, rules, metric = model.name, model.retrain, model.scorer

    @dg.sensor(
        name=f"retrain_{name}",
        job_name=job_name,
        minimum_interval_seconds=rules.check_every_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrain {name} from labelled feedback ({rules.min_feedback_rows} rows).",
    )
    def retrain(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        mlflow: MlflowRegistry,
    ) -> dg.SensorResult | dg.SkipReason:
        champion = mlflow.champion(name)
        if champion is None:
            return dg.SkipReason(f"{name} has no champion yet: nothing serves, nothing to improve")
        since = max(feedback_watermark(champion), float(context.cursor or 0))
        new, latest = prediction_log.store.labelled_since(name, since)
        reasons = []
        if new >= rules.min_feedback_rows:
            reasons.append(
                f"{new} new labelled rows >= min_feedback_rows {rules.min_feedback_rows}"
            )
        if rules.min_live_metric is not None and new:
            labelled = prediction_log.store.labelled(name)
            version = str(champion.version)
            live = live_metrics(labelled[labelled.model_version == version], metric)
            value = version_live_metric(live, version, metric, MIN_ROWS_FOR_LIVE_METRIC)
            if value is not None and not metric.meets(value, rules.min_live_metric):
                reasons.append(
                    f"live {metric.name} of v{version} is {value:.4f}, "
                    f"past min_live_metric {rules.min_live_metric}"
                )
        age_hours = (time.time() - champion.creation_timestamp / 1000) / 3600
        if rules.max_age_hours is not None and age_hours > rules.max_age_hours and new:
            reasons.append(f"champion v{champion.version} is {age_hours:.1f} h old")
        if not reasons:
            return dg.SkipReason(
                f"{new} labelled rows since the last training (need {rules.min_feedback_rows}); "
                "live metric and age rules not triggered"
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{name}-feedback-until-{latest!r}",
                    tags={
                        "mlserve/trigger": "; ".join(reasons)[:200],
                        "mlserve/new_labels": str(new),
                    },
                )
            ],
            cursor=repr(latest),
        )

    return retrain
