"""Feedback-driven retraining: one sensor per model that closes the loop without a person.

What a run has used is read from the registry, not kept in the sensor: every registered version
records the latest label its training saw, so labels count as used once a run has registered a
version with them, whether the gate passed or held it, and a run that failed releases its labels
by registering nothing. Guardrails keep a steady or noisy label stream from turning into a training
per tick: no request while a run of the model is in flight, a cooldown between runs, a cap per day
(both counted from the requests the cursor records as well as the runs the instance shows: a run
just launched can take seconds to appear), and after a held gate a back-off until
``min_feedback_rows`` new labels arrive (or the live metric is clearly worse than when the gate
held). The run key is derived from the labels and the last run, so two evaluations of the same
state request the same run, across daemon restarts.
"""

import json
import time
from datetime import UTC, datetime

import dagster as dg

from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.spec.models import MIN_LIVE_LABELS, ModelSpec
from serving.registry import Tag, feedback_watermark, gate_outcome

DAY_SECONDS = 86400
IN_FLIGHT = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


def build_retrain_sensor(model: ModelSpec, job_name: str) -> dg.SensorDefinition:
    """The sensor that requests ``job_name`` when the spec's retraining rules say so."""
    name, rules, metric = model.name, model.retrain, model.scorer

    @dg.sensor(
        name=f"retrain_{name}",
        job_name=job_name,
        minimum_interval_seconds=rules.check_every_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Retrain {name} from labelled feedback ({rules.min_feedback_rows} new labels, "
            f"cooldown {rules.cooldown_seconds:g} s, at most {rules.max_runs_per_day} runs a day)."
        ),
    )
    def retrain(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        mlflow: MlflowRegistry,
    ) -> dg.SensorResult | dg.SkipReason:
        champion = mlflow.champion(name)
        if champion is None:
            return dg.SkipReason(f"{name} has no champion yet: nothing serves, nothing to improve")
        instance = context.instance
        [last_run] = instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1) or [None]
        if last_run is not None and last_run.dagster_run.status in IN_FLIGHT:
            return dg.SkipReason(f"run {last_run.dagster_run.run_id} of {name} is in flight")

        decided = mlflow.latest_version(name)
        since = max(feedback_watermark(champion), feedback_watermark(decided))
        new, latest = prediction_log.store.labelled_since(name, since)
        held = decided is not None and gate_outcome(decided) == "held"
        reasons = []
        if new >= rules.min_feedback_rows:
            reasons.append(
                f"{new} new labelled rows >= min_feedback_rows {rules.min_feedback_rows}"
            )
        if rules.min_live_metric is not None and new:
            version = str(champion.version)
            live = prediction_log.live_metric(
                name, version, metric, rules.live_window, MIN_LIVE_LABELS
            )
            if live is not None and not metric.meets(live, rules.min_live_metric):
                at_decision = decided.tags.get(Tag.CHAMPION_LIVE) if held else None
                worse = at_decision is None or (
                    metric.improvement(float(at_decision), live) > rules.backoff_live_drop
                )
                if not held or worse:
                    reasons.append(
                        f"live {metric.name} of v{version} is {live:.4f}, "
                        f"past min_live_metric {rules.min_live_metric}"
                    )
        age_hours = (time.time() - champion.creation_timestamp / 1000) / 3600
        if rules.max_age_hours is not None and age_hours > rules.max_age_hours and new and not held:
            reasons.append(f"champion v{champion.version} is {age_hours:.1f} h old")
        if not reasons:
            backoff = f"; the gate held v{decided.version}, so back off" if held else ""
            return dg.SkipReason(
                f"{new} labelled rows since the last training (need {rules.min_feedback_rows}); "
                f"live metric and age rules not triggered{backoff}"
            )

        now = time.time()
        # The cursor keeps the time of every request of the last day: a run the daemon has just
        # launched may not show in the instance yet, and must still count for cooldown and cap.
        requested = [t for t in json.loads(context.cursor or "[]") if t > now - DAY_SECONDS]
        started = [*requested]
        if last_run is not None:
            started.append(last_run.create_timestamp.timestamp())
        since_last = now - max(started, default=0.0)
        if since_last < rules.cooldown_seconds:
            return dg.SkipReason(
                f"cooldown: the last run was requested {since_last:.0f} s ago "
                f"(cooldown_seconds {rules.cooldown_seconds:g}); would retrain: "
                + "; ".join(reasons)
            )
        day_ago = datetime.fromtimestamp(now - DAY_SECONDS, UTC)
        today = max(
            len(requested),
            instance.get_runs_count(dg.RunsFilter(job_name=job_name, created_after=day_ago)),
        )
        if today >= rules.max_runs_per_day:
            return dg.SkipReason(
                f"cap: {today} runs in the last 24 h (max_runs_per_day {rules.max_runs_per_day})"
            )
        after = last_run.dagster_run.run_id if last_run is not None else "none"
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{name}-labels-until-{latest!r}-after-{after}",
                    tags={
                        "mlserve/trigger": "; ".join(reasons)[:200],
                        "mlserve/new_labels": str(new),
                    },
                )
            ],
            cursor=json.dumps([*requested, now]),
        )

    return retrain
