"""Promotion on shadow evidence: one sensor per model, promoting a challenger proven live.

The sensor gathers facts (the vetted challenger, the champion, the labelled requests the champion
answered and the challenger answered in shadow, who labelled them) and asks ``ml.shadow.judge``. A
look is judged once: the cursor holds the last one. A promotion is two recorded moves: the champion
to the challenger (whose baking then starts), and the shadow stopped.
"""

from __future__ import annotations

import dagster as dg
import numpy as np

from mlserve_assets.ml.bake import milestone
from mlserve_assets.ml.labels import UNKNOWN_SENDER
from mlserve_assets.ml.shadow import judge
from mlserve_assets.resources.predictions import PredictionLogResource
from mlserve_assets.resources.registry import MlflowRegistry
from mlserve_assets.sensors.ticks import minimum_interval
from mlserve_assets.spec.models import ModelSpec
from serving.registry import CHALLENGER, champion_state, move_alias
from serving.store import shadow
from serving.store.moves import StaleMove


def build_shadow_sensor(model: ModelSpec) -> dg.SensorDefinition:
    """The sensor that judges ``model``'s challenger in shadow and promotes it when proven."""
    name, rules, gate, metric = model.name, model.shadow, model.gate, model.scorer

    @dg.sensor(
        name=f"shadow_{name}",
        minimum_interval_seconds=minimum_interval(rules.check_every_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Compare {name}'s challenger in shadow with what answered, on the same labelled "
            "requests; " + ("promote it once surely better." if rules.promote else "report only.")
        ),
    )
    def judge_shadow(
        context: dg.SensorEvaluationContext,
        prediction_log: PredictionLogResource,
        registry: MlflowRegistry,
    ) -> dg.SkipReason:
        store, trust = prediction_log.store, registry.trust_registry
        version = champion_state(
            registry.client, store, name, trust_registry=trust, alias=CHALLENGER
        ).vetted
        current = registry.champion(name, prediction_log)
        if version is None or current is None or str(current.version) == version:
            return dg.SkipReason(f"no challenger of {name} in shadow")
        served = str(current.version)
        start = shadow.pairing_start(store, name)
        rows = shadow.outcomes(store, name, version, since=start)
        rows = rows[rows["model_version"].astype(str) == served]  # against this champion only
        n = milestone(len(rows), rules.min_labels, final=False, most=rules.max_labels)
        look = f"{version}:{served}:{start}:{n}"
        if n == 0 or look == context.cursor:
            return dg.SkipReason(
                f"v{version} in shadow of v{served}: {len(rows)} labelled requests "
                f"(judged at {rules.min_labels}, then each doubling up to {rules.max_labels})"
            )
        first = rows.head(n)
        verdict = judge(
            metric,
            gate,
            rules,
            np.asarray(first["ground_truth"].tolist()),
            np.asarray(first["shadow"].tolist()),
            np.asarray(first["prediction"].tolist()),
            [k or UNKNOWN_SENDER for k in first["key_id"]],  # as the gate counts them
            prediction_log.trusted_senders(gate.trusted_sources),
            version,
        )
        context.update_cursor(look)
        if not (verdict.promote and rules.promote):
            return dg.SkipReason(verdict.reason)
        by = f"sensor shadow_{name}"
        try:
            move_alias(
                registry.client,
                store,
                name,
                version,
                by=by,
                reason=verdict.reason,
                evidence=verdict.evidence,
                replacing=... if trust else served,  # judged against it: a move since wins
            )
        except StaleMove as exc:
            return dg.SkipReason(f"not promoted: {exc}")
        move_alias(
            registry.client,
            store,
            name,
            None,
            by=by,
            reason=f"v{version} promoted",
            evidence={},
            alias=CHALLENGER,
        )
        context.log.info(f"{name}: {verdict.reason}")
        return dg.SkipReason(f"promoted: {verdict.reason}")

    return judge_shadow
