"""Feedback-driven retraining: one sensor per model that closes the loop without a person.

The sensor only gathers facts (the registry, the prediction log, the Dagster instance, its own
cursor) and asks ``ml.retrain.should_retrain``, where every rule lives and is tested. What a run
has used is read from the registry, not kept in the sensor: every registered version records the
latest label its training saw, so labels count as used once a run has registered a version with
them, whether the gate passed or held it, and a run that failed releases its labels by registering
nothing.
"""

import json
import time
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
from mlflow.entities.model_registry import ModelVersion

from mlserve_assets.ml.retrain import DAY_SECONDS, RetrainFacts, labels_needed, should_retrain
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.ticks import minimum_interval
from mlserve_assets.spec.models import ModelSpec
from mlserve_assets.spec.watching import MIN_LIVE_LABELS
from serving.registry import Tag, feedback_watermark, gate_outcome

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
        minimum_interval_seconds=minimum_interval(rules.check_every_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Retrain {name} from labelled feedback ({labels_needed(rules)} new labels; "
            f"cooldown {rules.cooldown_seconds:g} s, at most {rules.max_runs_per_day} runs a day)."
        ),
    )
    def retrain(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        registry: MlflowRegistry,
    ) -> dg.SensorResult | dg.SkipReason:
        requested = tuple(json.loads(context.cursor or "[]"))
        facts = RetrainFacts(name, time.time(), None, requested=requested)
        champion = registry.champion(name, prediction_log)
        if champion is not None:
            facts = _facts(
                facts, champion, context.instance, prediction_log, registry, model, job_name
            )
        decision = should_retrain(facts, rules, metric)
        if not decision.request:
            return dg.SkipReason(decision.reason)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=decision.run_key, tags=decision.tags)],
            cursor=json.dumps(list(decision.requested)),
        )

    return retrain


def _facts(
    facts: RetrainFacts,
    champion: ModelVersion,
    instance: dg.DagsterInstance,
    prediction_log: PredictionLogResource,
    registry: MlflowRegistry,
    model: ModelSpec,
    job_name: str,
) -> RetrainFacts:
    """Every fact the rules read, for a model that has a champion."""
    name, rules = model.name, model.retrain
    [last_run] = instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1) or [None]
    run = None if last_run is None else last_run.dagster_run
    decided = registry.latest_version(name)
    new, first, latest = prediction_log.labelled_since(
        name, max(feedback_watermark(champion), feedback_watermark(decided))
    )
    held = decided is not None and gate_outcome(decided) == "held"
    at_hold = decided.tags.get(Tag.CHAMPION_LIVE) if held else None
    live = None
    if rules.min_live_metric is not None and new:  # read only when a rule would use it
        live = prediction_log.live_metric(
            name, str(champion.version), model.scorer, rules.live_window, MIN_LIVE_LABELS
        )
    day_ago = datetime.fromtimestamp(facts.now - DAY_SECONDS, UTC)
    return replace(
        facts,
        champion_version=str(champion.version),
        champion_created=champion.creation_timestamp / 1000,
        in_flight_run=run.run_id if run is not None and run.status in IN_FLIGHT else None,
        last_run_id=None if run is None else run.run_id,
        last_run_created=None if last_run is None else last_run.create_timestamp.timestamp(),
        runs_last_day=instance.get_runs_count(
            dg.RunsFilter(job_name=job_name, created_after=day_ago)
        ),
        new_labels=new,
        first_label=first,
        latest_label=latest,
        held_version=str(decided.version) if held else None,
        live=live,
        live_at_hold=None if at_hold is None else float(at_hold),
    )
