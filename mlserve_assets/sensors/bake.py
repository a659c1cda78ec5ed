"""Baking: one sensor per model that watches each new champion and rolls it back if it is worse.

The sensor gathers facts (the champion's newest recorded move, what the new champion answered
since, the labels that came for those answers), replays the answers with the version it replaced,
loaded as the service loads it, and asks ``ml.bake.judge``. A look is judged once: the cursor
holds the last one (the move and the milestone of labels). A rollback is a recorded move like any
other (``serving.registry.move_alias``), naming the version it undid, with the evidence; the
service follows it at its next poll. A rollback itself is not watched: it returns to a version
that served before.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import dagster as dg
import httpx
import numpy as np
import pandas as pd

from mlserve_assets.ml.bake import judge, milestone
from mlserve_assets.ml.estimate import estimated_score
from mlserve_assets.resources.alerts import AlertmanagerResource, FiringAlert
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.ticks import minimum_interval
from mlserve_assets.spec.models import ModelSpec
from serving.model.artifact import RefusedModel, trusted_types
from serving.model.loading import load_version
from serving.registry import Tag, move_alias
from serving.store.moves import ROLLBACK_OF, Move, StaleMove, history
from serving.store.window import answered

HOUR = 3600.0


def build_bake_sensor(model: ModelSpec) -> dg.SensorDefinition:
    """The sensor that watches ``model``'s new champions for ``model.bake``'s window."""
    name, rules, metric = model.name, model.bake, model.scorer

    @dg.sensor(
        name=f"bake_{name}",
        minimum_interval_seconds=minimum_interval(rules.check_every_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watch each new champion of {name} for {rules.hours:g} h (or {rules.requests} "
            f"answers) against the version it replaced, on the same requests; "
            + ("roll it back if worse." if rules.rollback else "report only (rollback: false).")
        ),
    )
    def bake(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        registry: MlflowRegistry,
        alerts: AlertmanagerResource,
    ) -> dg.SkipReason:
        store = prediction_log.store
        [move] = history(store, name, last=1) or [None]
        if move is None or move.from_version is None or move.rolls_back:
            return dg.SkipReason(f"nothing to watch: {name}'s last move was no promotion")
        now, end = time.time(), move.moved_at + rules.hours * HOUR
        final = now >= end + rules.late_label_hours * HOUR
        watching = now < end and rules.rollback
        fired = _fired(context, alerts, rules.alerts, move) if watching else []
        if fired:
            first = min(fired, key=lambda a: a.since)
            reason = (
                f"rolled back: {first.name} fired {first.since - move.moved_at:.0f} s after "
                f"v{move.to_version} took over: {first.summary}"
            )
            evidence = {"alerts": [asdict(a) for a in fired]}
            if _roll_back(context, registry, prediction_log, move, reason, evidence):
                outcome = {"outcome": "rolled back", "reason": reason, **evidence}
                registry.tag_version(name, move.to_version, {Tag.BAKE: json.dumps(outcome)})
                return dg.SkipReason(reason)
        if final and context.cursor == f"{_watch(move)}:final":
            return dg.SkipReason(f"v{move.to_version}'s watch is over")
        rows = answered(store, name, move.to_version, move.moved_at, end, rules.requests)
        labelled = rows[rows["ground_truth"].notna()]
        n = milestone(len(labelled), rules.min_labels, final)
        look = f"{_watch(move)}:{'final' if final else n}"
        if n == 0 or look == context.cursor:
            return dg.SkipReason(
                f"watching v{move.to_version} against v{move.from_version}: {len(rows)} answers, "
                f"{len(labelled)} labelled (judged at {rules.min_labels}, then each doubling)"
            )
        try:
            old = _replayed(registry, model, move.from_version, list(rows["features"]))
        except (RefusedModel, ValueError) as exc:
            context.update_cursor(look)
            return dg.SkipReason(f"v{move.from_version} cannot replay v{move.to_version}: {exc}")
        first = labelled.head(n).index
        verdict = judge(
            metric,
            rules,
            np.asarray(labelled.loc[first, "ground_truth"].tolist()),
            np.asarray(labelled.loc[first, "prediction"].tolist()),
            np.asarray(old.loc[first, "prediction"].tolist()),
            (move.to_version, move.from_version),
        )
        evidence = verdict.evidence | {
            f"v{move.to_version}_estimate": estimated_score(
                metric, rows["prediction"].tolist(), rows["probabilities"].tolist()
            ),
            f"v{move.from_version}_estimate": estimated_score(
                metric, old["prediction"].tolist(), old["probabilities"].tolist()
            ),
            "answers": len(rows),
            "final": final,
        }
        context.update_cursor(look)
        rolled = (
            verdict.rollback
            and rules.rollback
            and _roll_back(
                context,
                registry,
                prediction_log,
                move,
                f"rolled back: {verdict.reason}",
                evidence,
            )
        )
        outcome = "rolled back" if rolled else "worse" if verdict.rollback else "kept"
        registry.tag_version(
            name,
            move.to_version,
            {Tag.BAKE: json.dumps({"outcome": outcome, "reason": verdict.reason, **evidence})},
        )
        return dg.SkipReason(f"{outcome}: {verdict.reason}")

    return bake


def _watch(move: Move) -> str:
    """A move's identity in the cursor."""
    return f"{move.to_version}@{move.moved_at!r}"


def _replayed(
    registry: MlflowRegistry, model: ModelSpec, version: str, records: list[object]
) -> pd.DataFrame:
    """``version``'s answers to ``records``, as the service would give them."""
    served = load_version(registry.client, model.name, version, trusted_types(model.trusted_types))
    scored = served.replay(records)
    return pd.DataFrame(
        {"prediction": scored.labels, "probabilities": scored.probabilities or None}
    )


def _fired(
    context: dg.SensorEvaluationContext,
    alerts: AlertmanagerResource,
    names: list[str],
    move: Move,
) -> list[FiringAlert]:
    """The rollback alerts that began firing since ``move``; none if Alertmanager cannot say."""
    try:
        return alerts.firing(names, move.model_name, since=move.moved_at)
    except httpx.HTTPError as exc:
        context.log.warning(f"Alertmanager unreachable, judging on the live metric alone: {exc}")
        return []


def _roll_back(
    context: dg.SensorEvaluationContext,
    registry: MlflowRegistry,
    prediction_log: PredictionLogResource,
    move: Move,
    reason: str,
    evidence: dict,
) -> bool:
    """Move the champion back to the version ``move`` replaced; False if a move came since."""
    if not _still_newest(prediction_log, move):
        return False
    try:
        move_alias(
            registry.client,
            prediction_log.store,
            move.model_name,
            move.from_version,
            by=f"sensor bake_{move.model_name}",
            reason=reason,
            evidence={**evidence, ROLLBACK_OF: move.to_version},
            replacing=move.to_version,  # a promotion since is not undone by this look
        )
    except StaleMove:
        return False
    context.log.warning(f"{move.model_name}: v{move.to_version} {reason}")
    return True


def _still_newest(prediction_log: PredictionLogResource, move: Move) -> bool:
    """Whether ``move`` is still the newest: a promotion since then is not undone by this look."""
    [newest] = history(prediction_log.store, move.model_name, last=1)
    return _watch(newest) == _watch(move)
